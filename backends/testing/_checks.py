"""`check_function`: one user function run on every variant, and everything checked about it.

Each variant gets private copies of the caller's NumPy arrays, calls the function in its mode
(`xpsoftmax.backends.Variant.call`) and is checked, in this order, for: an error in the call,
laziness (Dask computes nothing during the call; `jax.jit` and ``torch.compile(fullgraph=True)``
trace), warnings, types (library, device, floating dtype, shape), mutation of the inputs, values
against a float64 NumPy reference, and with ``grad=True`` gradients against central finite
differences. The first check that fails on a variant is reported; every variant is run, and one
AssertionError lists them all, one line each: ``<variant>: <check>: <what happened>``.

NumPy is imported inside the functions: ``import xpsoftmax.testing`` imports no array library.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ._gradients import gradient_failure
from ._inputs import Inputs, compare
from ._matrix import select

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant

#: Default relative tolerance per input dtype: about a hundred rounding errors of that dtype
#: for float32 and float16, a few thousand for float64 (the reference's own rounding).
DEFAULT_RTOL = {"float16": 5e-3, "float32": 1e-5, "float64": 1e-12}

#: Warnings the frameworks emit by themselves, whatever the function does; never a finding. Each
#: entry is a tuple of texts that must all appear in the message.
FRAMEWORK_WARNINGS: tuple[tuple[str, ...], ...] = (
    # jax built for CPU says once, on a machine with an NVIDIA GPU, that it cannot use it.
    ("An NVIDIA GPU may be present",),
    # torch.compile's own code loads decompositions through the deprecated torch.jit.script.
    ("`torch.jit.script` is deprecated",),
    ("`torch.jit.script_method` is deprecated",),
    # torch.compile instantiates each autograd.Function it traces, then warns that it was.
    ("should not be instantiated",),
    # Dynamo tracing array_api_compat.array_namespace (an lru_cache inside array-api-compat):
    # every array-API function compiled by torch.compile gets it, whatever it does.
    ("lru_cache`-wrapped function", "array_api_compat"),
)


class _Failure(Exception):
    """One check failed on one variant."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")


def check_function(
    fn: Callable[..., Any],
    /,
    *args: Any,
    reference: Callable[..., Any],
    rtol: float | None = None,
    atol: float | None = None,
    variants: Iterable[str | Variant] | None = None,
    grad: bool = False,
    **kwargs: Any,
) -> list[str]:
    """Run ``fn(*args, **kwargs)`` on every variant and check what a backend-agnostic function owes.

    Parameters
    ----------
    fn : callable
        The function under test, written against the array API (it takes the namespace from its
        arguments, e.g. with ``array_api_compat.array_namespace``).
    *args, **kwargs
        Its arguments. NumPy arrays become each variant's arrays (a private copy per variant,
        dtype kept); anything else (axes, Python numbers, strings) is passed as it is, and under
        `jax.jit` or ``torch.compile`` as a constant.
    reference : callable
        The same function written with NumPy (or SciPy), the oracle. It gets the same
        arguments, floating arrays converted to float64.
    rtol, atol : float, optional
        Tolerances of the values check, ``|result - expected| <= atol + rtol * |expected|``.
        By default rtol is 5e-3, 1e-5 or 1e-12 for float16, float32 or float64 input, and atol
        is rtol times the largest finite ``|expected|``.
    variants : iterable of str or Variant, optional
        The variants to run, by name ("numpy", "jax.jit", ...; see `variants`); all that can
        run here by default. A variant whose library lacks the input's dtype is left out.
    grad : bool, default False
        Also check, on the variants with automatic differentiation (JAX, PyTorch), the gradient
        of ``sum(w * fn(...))`` for a fixed random ``w`` with respect to each floating array
        argument against central finite differences of the reference. Each element costs two
        reference calls: keep the inputs small.

    Returns
    -------
    list of str
        The names of the variants checked.

    Raises
    ------
    AssertionError
        When a check fails on some variant; one line per failing variant,
        ``<variant>: <check>: <what happened>``, where the check is one of "call", "laziness",
        "warnings", "types", "mutation", "values" or "gradients".

    Examples
    --------
    >>> import numpy as np
    >>> import array_api_compat
    >>> from xpsoftmax import testing
    >>> def double(x):
    ...     xp = array_api_compat.array_namespace(x)
    ...     return xp.multiply(x, 2)
    >>> testing.check_function(
    ...     double, np.ones(3), reference=lambda x: 2 * x, variants=["numpy", "array_api_strict"]
    ... )
    ['numpy', 'array_api_strict']
    >>> def double_in_place(x):
    ...     x *= 2
    ...     return x
    >>> testing.check_function(
    ...     double_in_place, np.ones(3), reference=lambda x: 2 * x, variants=["numpy"]
    ... )
    Traceback (most recent call last):
    AssertionError: check_function(double_in_place) failed:
    numpy: mutation: fn modified its argument x (position 0) in place
    """
    inputs = Inputs(fn, args, kwargs)
    expected = inputs.run_reference(reference)
    dtype = inputs.floating_dtype()
    rtol = DEFAULT_RTOL.get(dtype or "float64", 1e-12) if rtol is None else rtol
    finite = abs(expected[_isfinite(expected)])
    atol = rtol * float(finite.max(initial=0.0)) if atol is None else atol
    checked: list[str] = []
    failures: list[str] = []
    for v in select(variants):
        if dtype is not None and dtype not in v.dtypes():
            continue
        checked.append(v.name)
        try:
            _check_variant(v, fn, inputs, expected, dtype, rtol, atol)
            if grad and v.backend.has_autodiff:
                # Warnings are the call's check; the framework's autodiff and compiler warn
                # about their own internals here.
                with _recorded_warnings():
                    found = gradient_failure(v, fn, inputs, reference, expected, rtol=10 * rtol)
                if found:
                    raise _Failure("gradients", found)
        except _Failure as failure:
            failures.append(f"{v.name}: {failure}")
    if failures:
        name = getattr(fn, "__name__", repr(fn))
        raise AssertionError(f"check_function({name}) failed:\n" + "\n".join(failures))
    return checked


def _check_variant(
    v: Variant,
    fn: Callable[..., Any],
    inputs: Inputs,
    expected: np.ndarray,
    dtype: str | None,
    rtol: float,
    atol: float,
) -> None:
    args, kwargs = inputs.on(v)
    with _recorded_warnings() as caught, _counted_computes(v) as computes:
        try:
            result = v.call(fn, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 (whatever fn raises is a finding, reported)
            what = f"{type(err).__name__}: {_first_line(err)}"
            if v.compiled and _runs_eagerly(v, fn, inputs):
                raise _Failure("laziness", f"fn does not trace under {v.name}: {what}") from None
            raise _Failure("call", f"fn raised {what}") from None
    if computes:
        raise _Failure(
            "laziness",
            f"fn computed a Dask array {len(computes)} time(s) during the call "
            "(float(), int(), bool(), .item() or an `if` on an array computes it)",
        )
    _check_types(v, result, dtype)
    with _recorded_warnings() as caught_computing:
        host = v.to_numpy(result)
    found = [w for w in caught + caught_computing if not _is_framework_warning(w)]
    if found:
        first = found[0]
        raise _Failure("warnings", f"{first.category.__name__}: {_first_line(first.message)}")
    if host.shape != expected.shape:
        raise _Failure("types", f"shape {host.shape}, expected {expected.shape} (the reference's)")
    changed = inputs.changed(v, args, kwargs)
    if changed:
        raise _Failure("mutation", f"fn modified its argument {changed} in place")
    mismatch = compare(host, expected, rtol=rtol, atol=atol)
    if mismatch:
        raise _Failure("values", mismatch)


def _runs_eagerly(v: Variant, fn: Callable[..., Any], inputs: Inputs) -> bool:
    """Whether `fn` runs on `v`'s library uncompiled: if so, what failed was the tracing."""
    args, kwargs = inputs.on(v)
    try:
        with _recorded_warnings():
            fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 (fails eagerly too: not a tracing problem)
        return False
    return True


def _check_types(v: Variant, result: Any, dtype: str | None) -> None:
    import array_api_compat

    try:
        library = array_api_compat.array_namespace(result)
    except TypeError:
        raise _Failure(
            "types", f"result is a {type(result).__name__}, not an array of {v.backend.name}"
        ) from None
    if library is not v.xp:
        raise _Failure(
            "types", f"result is a {type(result).__name__}, not an array of {v.backend.name}"
        )
    device = v.backend.device_of(result)
    if device != v.device:
        raise _Failure("types", f"result on device {device}, expected {v.device} (the input's)")
    got = str(result.dtype).rpartition(".")[2]
    if dtype is not None and got != dtype:
        raise _Failure("types", f"dtype {got}, expected {dtype} (the input's)")


@contextlib.contextmanager
def _recorded_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        # "always": a warning already shown once in this process is still a finding.
        warnings.simplefilter("always")
        yield caught


@contextlib.contextmanager
def _counted_computes(v: Variant) -> Iterator[list[object]]:
    """On Dask, a scheduler that notes each compute (and then computes, synchronously, so that the
    function runs to the end and its other faults show too); elsewhere nothing."""
    computes: list[object] = []
    if v.backend.name != "dask":
        yield computes
        return
    import dask
    import dask.local

    def counting_scheduler(graph: Any, keys: Any, **options: Any) -> Any:
        computes.append(keys)
        return dask.local.get_sync(graph, keys, **options)

    with dask.config.set(scheduler=counting_scheduler):
        yield computes


def _is_framework_warning(caught: warnings.WarningMessage) -> bool:
    message = str(caught.message)
    return any(all(text in message for text in texts) for texts in FRAMEWORK_WARNINGS)


def _first_line(err: BaseException | str | Warning) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _isfinite(a: np.ndarray) -> np.ndarray:
    import numpy as np

    finite: np.ndarray = np.isfinite(a)
    return finite
