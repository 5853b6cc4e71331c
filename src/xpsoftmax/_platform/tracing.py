"""Whether values can be read now: lazy arrays, tracers and compilers, and the reads allowed
(spec: When a value is known)."""

from __future__ import annotations

from .namespaces import (
    Array,
    Namespace,
    compiling_now,
    is_lazy_array,
    library_of,
    namespace_library,
)

__all__ = [
    "all_below_now",
    "is_compiling",
    "is_concrete",
    "may_warn_on_overflow",
    "surely_false",
    "surely_true",
    "tracer_type",
    "values_are_known",
]


def is_compiling(x: Array) -> bool:
    """Whether x's library is compiling the caller now (torch.compile tracing it)."""
    return compiling_now(type(x))


def values_are_known(a: Array) -> bool:
    """Whether a's values can be read now, to choose a faster path or to raise a clear error.

    Not for lazy arrays (reading would run their graph or fail on a tracer), nor while the
    array's library is compiling the caller (reading a value would break its graph).
    """
    # (The compiler first: array-api-compat's helpers are cached functions it warns about.)
    if compiling_now(type(a)):
        return False
    return not is_lazy_array(a) or is_concrete(a)


def is_concrete(a: Array) -> bool:
    """Whether a lazy-looking array holds values now: true of a library's eager arrays when
    that library tells them from its tracers by a ``core.Tracer`` type (JAX)."""
    tracer = tracer_type(a)
    return tracer is not None and not isinstance(a, tracer)


def tracer_type(a: Array) -> type | None:
    """The ``core.Tracer`` type of a's library, if it has one (looked up, never imported)."""
    found = getattr(getattr(namespace_library(a), "core", None), "Tracer", None)
    return found if isinstance(found, type) else None


def surely_false(condition: Array) -> bool:
    """True when the 0-d boolean `condition` can be read now and is False.

    Callers use it to skip work or checks that are only needed when the condition holds, so
    "cannot tell" answers False: lazy or traced arrays, and libraries that refuse to read a
    value inside a transform (``torch.func.vmap`` raises RuntimeError).
    """
    if not values_are_known(condition):
        return False
    try:
        return not bool(condition)
    except RuntimeError:
        return False


def surely_true(condition: Array) -> bool:
    """True when the 0-d boolean `condition` can be read now and is True (see `surely_false`)."""
    if not values_are_known(condition):
        return False
    try:
        return bool(condition)
    except RuntimeError:
        return False


def all_below_now(xp: Namespace, values: Array, limit: float) -> bool:
    """True when `values`, an eager array whose values are known, surely has ``|v| < limit``.

    One elementwise operation, one reduction and one scalar read (a NaN anywhere makes the
    largest magnitude NaN, which is not below anything); a sum would warn on ``inf + -inf``.
    A library that refuses the read inside a transform (``torch.func.vmap``) answers False:
    callers then take their general path, which is correct for every input. The caller has
    checked `values_are_known`; this does not ask again.
    """
    try:
        largest = xp.max(xp.abs(values))
        if getattr(largest, "requires_grad", False):
            # Reading a float from an array that records gradients warns; a comparison does not.
            return bool(largest < limit)
        # (A Python comparison: an array comparison with a scalar costs a dispatch more.)
        return float(largest) < limit
    except RuntimeError:
        return False


def may_warn_on_overflow(x: Array) -> bool:
    """Whether operations on x may report a floating-point overflow as a warning.

    Libraries that run each operation on NumPy's kernels do (NumPy, array-api-strict, Dask's
    chunks), even where infinity is the right result; libraries with a compiler of their own
    (a ``jit``: JAX, PyTorch) never do, and there the guard against it would only cost time.
    """
    return not hasattr(library_of(type(x)), "jit")
