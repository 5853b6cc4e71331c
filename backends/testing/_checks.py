"""`check_function`: one user function run on every variant, and everything checked about it.

Each variant gets private copies of the caller's NumPy arrays, calls the function in its mode
(`jax.jit`, ``torch.compile``, lazily on Dask) and runs every check (`_variant_checks`): call,
laziness, devices, types, warnings, mutation, values and, with ``grad=True``, gradients. One
AssertionError then lists every failing check of every variant, one line each:
``<variant>: <check>: <what happened>``. Nothing else escapes: what goes wrong inside a
variant is that variant's finding, and the others are still checked.

NumPy is imported inside the functions: ``import xpsoftmax.testing`` imports no array library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._findings import CHECKS, Finding, describe
from ._gradients import reference_gradients, weights_for
from ._inputs import Inputs
from ._matrix import select
from ._matrix import variants as all_variants
from ._results import flatten, unflatten
from ._running import Policy
from ._variant_checks import Case, check_variant

if TYPE_CHECKING:
    from xpsoftmax.backends import Variant

#: (variant name or None for every variant, check or None for every check).
Scope = tuple[str | None, str | None]


def check_function(
    fn: Callable[..., Any],
    /,
    *args: Any,
    reference: Callable[..., Any],
    rtol: float | None = None,
    atol: float | None = None,
    variants: Iterable[str | Variant] | None = None,
    grad: bool = False,
    reference_vjp: Callable[..., Any] | None = None,
    result_dtype: Any = None,
    fullgraph: bool = True,
    static_argnames: Iterable[str] | None = None,
    allow_dask_compute: bool | int = False,
    dask_chunks: Any = "auto",
    skip: Iterable[str] = (),
    xfail: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> list[str]:
    """Run ``fn(*args, **kwargs)`` on every variant and check what a backend-agnostic function owes.

    Every check runs on every variant, whatever the others found, and its verdict depends only
    on this call (a compiled variant starts from a compiler that has forgotten earlier
    functions). Anything that goes wrong in a variant, in the function or in checking it, is
    reported as that variant's finding; the only exception raised is the AssertionError that
    lists them.

    Parameters
    ----------
    fn : callable
        The function under test, written against the array API (it takes the namespace from its
        arguments, e.g. with ``array_api_compat.array_namespace``).
    *args, **kwargs
        Its arguments. NumPy arrays become each variant's arrays (a private copy per variant,
        dtype kept); anything else (axes, Python numbers, strings) is passed as it is, and under
        `jax.jit` or ``torch.compile`` as a constant (but see `static_argnames`).
    reference : callable
        The same function written with NumPy (or SciPy), the oracle. It gets the same
        arguments, floating arrays converted to float64 (complex ones to complex128). It may
        return an array, a Python scalar, or a tuple, list or dict of them; the function's
        result must have the same structure.
    rtol, atol : float, optional
        Tolerances of the values check, ``|result - expected| <= atol + rtol * |expected|``
        entry by entry. By default rtol follows the precision the result owes: 5e-3, 3e-2,
        1e-5 or 1e-12 for float16, bfloat16, float32 or float64; atol is rtol times the median
        magnitude of the nonzero expected entries of that result, so one large entry does not
        loosen the others. Both add the precision's smallest normal number, and an exact value
        beyond the precision's largest finite one may come out as that value or an infinity of
        its sign. Bool and integer results must be equal. Gradients get ten times rtol.
    variants : iterable of str or Variant, optional
        The variants to run, by name ("numpy", "jax.jit", "array_api_strict:device1", ...; see
        `variants`); all that can run here by default. A variant whose library lacks an input's
        dtype is left out.
    grad : bool, default False
        Also check, on the variants with automatic differentiation (JAX, PyTorch), the gradient
        of ``sum(w * fn(...))`` (a fixed random ``w`` per real floating part of the result) with
        respect to each real floating array argument, taken as users take it (`jax.grad`,
        ``backward``, compiled on a compiled variant), against the reference's: `reference_vjp`
        where given, else the complex-step derivative of the reference where it takes complex
        input, else Richardson-extrapolated central differences (the entries where these are
        uncertain, next to a kink, are held to their uncertainty). Keep the inputs small: each
        entry costs a few reference calls.
    reference_vjp : callable, optional
        The reference's derivative, ``reference_vjp(w, *args, **kwargs)``: the gradient of
        ``sum(w * reference(*args, **kwargs))`` with respect to each real floating array
        argument, in order of the arguments (an array, or a tuple of them). `w` has the
        structure of the reference's result (None for its parts that are not real floating).
    result_dtype : dtype, str or "reference", optional
        The precision a floating (or complex) result owes. By default that of the floating
        inputs (float32 in, float32 out), or without floating inputs the library's default
        floating dtype. A dtype ("float64") asks for that one; "reference" for the one the
        reference returns when given the inputs in their own dtypes. Whatever it is, a result's
        kind (bool, integer, real or complex floating) must be the reference's.
    fullgraph : bool, default True
        ``torch.compile(fn, fullgraph=...)``: True makes a graph break a laziness finding; with
        False, torch.compile may run parts of `fn` in Python.
    static_argnames : iterable of str, optional
        The arguments `jax.jit` treats as static. By default every argument that is not an
        array is static (closed over); given, Python numbers not named here are passed to the
        jitted function as traced values, as in a user's jitted code that computes them.
    allow_dask_compute : bool or int, default False
        How many times `fn` may compute a Dask graph during one call (array-api-extra's
        option of the same name): False for none, True for any number.
    dask_chunks : default "auto"
        The chunks of the Dask inputs (Dask's ``chunks`` argument), or "several": about three
        chunks along every axis, so that reductions cross chunk boundaries.
    skip : iterable of str
        Checks not to run: a check's name ("warnings"), or a variant's and a check's
        ("dask: warnings").
    xfail : mapping of str to str, optional
        Findings expected, each with its reason: ``{"dask: warnings": "overflow warns there
        (#123)"}``, or a variant's name alone for any finding on it. They are not reported;
        one that does not happen is (``expected to fail (reason) but passed``), so that a fix
        does not go unnoticed.

    Returns
    -------
    list of str
        The names of the variants checked.

    Raises
    ------
    AssertionError
        When a check fails on some variant: one line per failing check,
        ``<variant>: <check>: <what happened>``, where the check is one of "call", "laziness",
        "devices", "types", "warnings", "mutation", "values" or "gradients"; a message of
        several lines continues on lines indented by four spaces. An exception is told by its
        type, its whole message and the last frame of the user's code it passed through.
    TypeError, ValueError
        When an option is not one of those described, or the reference raises.

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
    __tracebackhide__ = True  # pytest shows the caller's frame and the verdict, not this code
    if not callable(reference):
        raise TypeError(f"reference must be a callable, got {type(reference).__name__}")
    chosen = select(variants)
    skipped = _skipped(skip)
    expected_failures = _expected_failures(xfail)
    inputs = Inputs(fn, args, kwargs)
    expected = _widened(_run_reference(inputs, reference, "reference"))
    native = None
    if isinstance(result_dtype, str) and result_dtype == "reference":
        native = _run_reference(inputs, reference, "reference", widen=False)
    elif result_dtype is not None:
        _check_dtype(result_dtype)
    weights = weights_for(expected) if grad else {}
    exact = {}
    if grad and any(v.backend.has_autodiff for v in chosen):
        try:
            exact = reference_gradients(inputs, reference, reference_vjp, expected, weights)
        except Exception as err:
            raise ValueError(
                f"the reference derivative could not be found: {describe(err)}"
            ) from err
    case = Case(
        fn=fn,
        inputs=inputs,
        expected=expected,
        native_expected=native,
        policy=_policy(fullgraph, static_argnames, allow_dask_compute, dask_chunks),
        rtol=_tolerance(rtol, "rtol"),
        atol=_tolerance(atol, "atol"),
        grad=bool(grad),
        exact_gradients=exact,
        weights=weights,
        result_dtype=result_dtype,
    )
    checked: list[str] = []
    findings: list[Finding] = []
    for v in chosen:
        if not inputs.fit(v):
            continue
        checked.append(v.name)
        mine = {check for name, check in skipped if name in (None, v.name)}
        try:
            found = check_variant(v, case, mine)
        except Exception as err:  # noqa: BLE001 (the toolkit's own fault: still a verdict line)
            found = {"call": f"xpsoftmax.testing could not check this variant: {describe(err)}"}
        findings += [Finding(v.name, c, found[c]) for c in CHECKS if c in found]
    lines = _unexpected(findings, expected_failures, checked)
    if lines:
        name = getattr(fn, "__name__", repr(fn))
        raise AssertionError(f"check_function({name}) failed:\n" + "\n".join(lines))
    return checked


def _unexpected(
    findings: list[Finding], expected: dict[Scope, str], checked: list[str]
) -> list[str]:
    """The verdict lines: the findings not expected, and the expected ones that did not come."""
    lines = []
    met: set[Scope] = set()
    for f in findings:
        scopes = [s for s in ((f.variant, f.check), (f.variant, None)) if s in expected]
        met.update(scopes)
        if not scopes:
            lines.append(f.line())
    for (name, check), reason in expected.items():
        if (name, check) not in met and name in checked:
            lines.append(f"{name}: {check or 'any check'}: expected to fail ({reason}) but passed")
    return lines


def _run_reference(
    inputs: Inputs, reference: Callable[..., Any], what: str, widen: bool = True
) -> Any:
    try:
        return inputs.run_reference(reference, widen=widen)
    except Exception as err:
        raise ValueError(f"{what} raised {describe(err)}") from err


def _widened(tree: Any) -> Any:
    """The reference's result with NumPy leaves as arrays, floating ones in float64 and complex
    ones in complex128; Python scalars and None kept, so that their kind is checked."""
    import numpy as np

    def widen(leaf: Any) -> Any:
        if not isinstance(leaf, (np.ndarray, np.generic)):
            return leaf
        array = np.asarray(leaf)
        if np.issubdtype(array.dtype, np.complexfloating):
            return array.astype(np.complex128)
        if np.issubdtype(array.dtype, np.floating):
            return array.astype(np.float64)
        return array

    leaves = {path: widen(leaf) for path, leaf in flatten(tree)}
    return unflatten(tree, leaves) if isinstance(tree, (tuple, list, dict)) else leaves[""]


def _policy(fullgraph: Any, static: Any, budget: Any, chunks: Any) -> Policy:
    if not isinstance(fullgraph, bool):
        raise TypeError(f"fullgraph must be True or False, got {fullgraph!r}")
    if not isinstance(budget, int) or budget < 0:  # bool is an int
        raise ValueError(f"allow_dask_compute must be True, False or a count >= 0, got {budget!r}")
    names = None
    if static is not None:
        names = frozenset([static] if isinstance(static, str) else static)
        if not all(isinstance(n, str) for n in names):
            raise TypeError(f"static_argnames must be names (str), got {static!r}")
    return Policy(fullgraph, budget, names, chunks)


def _tolerance(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    return float(value)


def _check_dtype(result_dtype: Any) -> None:
    import numpy as np

    try:
        dtype = np.dtype(result_dtype)
    except TypeError:
        dtype = None
    if dtype is None or not np.issubdtype(dtype, np.inexact):
        raise ValueError(
            "result_dtype must be None, 'reference' or a floating or complex dtype, got "
            f"{result_dtype!r}"
        )


def _skipped(entries: Iterable[str]) -> set[tuple[str | None, str]]:
    """The checks `skip` names: (variant name or None for all, check)."""
    scopes = {
        _scope(entry, "skip") for entry in ([entries] if isinstance(entries, str) else entries)
    }
    for name, check in scopes:
        if check is None:
            raise ValueError(f"skip: {name!r} names no check; leave a variant out with variants=")
    return {(name, check) for name, check in scopes if check is not None}


def _expected_failures(xfail: Mapping[str, str] | None) -> dict[Scope, str]:
    if xfail is None:
        return {}
    if not isinstance(xfail, Mapping):
        raise TypeError("xfail must map 'variant' or 'variant: check' to a reason")
    found = {}
    for entry, reason in xfail.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"xfail: {entry!r} needs a reason (a non-empty str)")
        scope = _scope(entry, "xfail")
        if scope[0] is None:
            raise ValueError(f"xfail: {entry!r} must name a variant ('variant: check')")
        found[scope] = reason
    return found


def _scope(entry: Any, option: str) -> Scope:
    """``"check"``, ``"variant"`` or ``"variant: check"``, each name checked."""
    known = {v.name for v in all_variants(include_missing=True)}
    if not isinstance(entry, str):
        raise TypeError(f"{option}: entries are str, got {entry!r}")
    name, _, check = entry.rpartition(": ") if ": " in entry else ("", "", entry)
    name, check = name.strip(), check.strip()
    if not name and check in known:
        name, check = check, ""
    if name and name not in known:
        raise ValueError(f"{option}: unknown variant {name!r} in {entry!r}; known: {sorted(known)}")
    if check and check not in CHECKS:
        raise ValueError(f"{option}: unknown check {check!r} in {entry!r}; known: {list(CHECKS)}")
    return (name or None, check or None)
