"""In-place updates: when a temporary of ours may be overwritten, and how a namespace takes it."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

from .autodiff import has_forward_tangent
from .namespaces import Array, Namespace, is_lazy_array, is_writeable_array
from .tracing import is_compiling

__all__ = [
    "accumulating_product",
    "can_update_in_place",
    "no_updates_in_place",
    "sets_at_integer_indices",
    "writes_into_out",
]


def can_update_in_place(a: Array, *operands: Array | float) -> bool:
    """Whether a temporary we created may be overwritten to save a fresh allocation
    (by an operation with `operands`).

    Lazy arrays gain nothing from it, read-only ones forbid it, and an array that an autodiff
    mechanism records (it requires grad, or carries a forward-mode tangent) may have been
    saved for the backward pass. So may one that records nothing when an operand records:
    a temporary updated by a recorded array has met that computation before (in ``v - <s,
    v>``, ``s * d`` saves d, which ``d -= sum(s * d)`` would then overwrite). Nor while the
    array's library compiles the caller: its compiler plans the buffers itself. Nor when a
    transform wraps the array (see `_owns_memory`): its wrappers have no rule for ``out=`` or
    an in-place update, nor for writing a wrapped operand's result into a plain array.
    """
    records = hasattr(a, "requires_grad")
    # (The compiler first: array-api-compat's helpers are cached functions it warns about.)
    if records and (a.requires_grad or is_compiling(a)):
        return False
    if not is_writeable_array(a) or is_lazy_array(a):
        return False
    if not records:
        return True
    if not (_IN_PLACE.get() and _owns_memory(a)) or has_forward_tangent(a):
        return False
    return not operands or all(
        _owns_memory(operand) and not getattr(operand, "requires_grad", False)
        for operand in operands
    )


def accumulating_product(total: Array) -> Callable[[Array, Array], Any] | None:
    """``product(a, b)``, which adds ``a @ b`` into `total`'s memory with no temporary (an
    ``addmm_`` method of the array: BLAS's gemm with beta = 1), where total has one and may be
    updated in place (`can_update_in_place`); None elsewhere.

    A sum of thin products (a block of tokens' share of a weight gradient) otherwise writes
    each product to a temporary and adds it in a second pass over the sum.
    """
    method = getattr(total, "addmm_", None)
    return method if callable(method) and can_update_in_place(total) else None


def _owns_memory(a: Array) -> bool:
    """Whether `a` has an address of its own, rather than being a transform's wrapper.

    Function transforms (PyTorch's ``torch.func``: vmap's batched arrays, grad's and jacfwd's
    tracking arrays) wrap an array in one that holds no memory; such a wrapper says nothing of
    recording gradients, yet has no batching rule for ``out=`` or in-place operations. Its
    library refuses to give the wrapper's address, which is how we tell it.
    """
    data_ptr = getattr(a, "data_ptr", None)
    if data_ptr is None:
        return True
    try:
        data_ptr()
    except (RuntimeError, NotImplementedError):
        return False
    return True


# Off while a derivative rule runs under recording autodiff (a backward pass that builds its
# own graph, for double backward): there even a temporary that requires no gradient may be
# saved by an operation that mixes it with one that does.
_IN_PLACE: contextvars.ContextVar[bool] = contextvars.ContextVar("in_place", default=True)


@contextlib.contextmanager
def no_updates_in_place() -> Iterator[None]:
    """Within: `can_update_in_place` answers False."""
    token = _IN_PLACE.set(False)
    try:
        yield
    finally:
        _IN_PLACE.reset(token)


def writes_into_out(xp: Namespace, function: Callable[..., Array]) -> bool:
    """Whether an elementwise function of a namespace can write its result into ``out=``.

    Universal functions say so (they carry ``nin`` and ``nout``); other libraries' builtins
    carry no signature to read, so the first call tries, on a one-element array, and the
    answer is kept per function. The standard has no ``out=``, so only callers that own a
    mutable temporary (`can_update_in_place`) ask, to compute into it rather than allocate.
    """
    if hasattr(function, "nout"):
        return True
    known = _WRITES_INTO_OUT.get(function)
    if known is None:
        probe = xp.zeros((1,))
        try:
            function(probe, out=probe)
            known = True
        except TypeError:
            known = False
        _WRITES_INTO_OUT[function] = known
    return known


# Filled only on eager calls with mutable arrays: a compiler never reaches it (see
# `can_update_in_place`), so it cannot make a compiled function recompile.
_WRITES_INTO_OUT: dict[Any, bool] = {}


def sets_at_integer_indices(xp: Namespace) -> bool:
    """Whether a namespace's arrays take ``a[indices] = values`` with an integer index array.

    The standard leaves it out of ``__setitem__`` (array-api-strict refuses it); NumPy, PyTorch
    and CuPy take it. The first call tries, on a two-element array, and the answer is kept per
    namespace. Only callers that own a mutable temporary (`can_update_in_place`) ask.
    """
    known = _SETS_AT_INTEGER_INDICES.get(xp)
    if known is None:
        probe = xp.zeros((2,))
        try:
            probe[xp.asarray([1])] = 1.0
            known = bool(probe[1] == 1.0)
        except (IndexError, TypeError):
            known = False
        _SETS_AT_INTEGER_INDICES[xp] = known
    return known


# Filled only on eager calls with mutable arrays, as `_WRITES_INTO_OUT` is.
_SETS_AT_INTEGER_INDICES: dict[Namespace, bool] = {}
