"""The gradients check: autodiff of the function on a variant against an accurate reference
derivative.

The scalar differentiated is ``sum(w * fn(...))`` over the real floating leaves of the result,
with a fixed random `w` of each leaf's shape: a plain sum would hide errors that cancel (the sum
of a softmax is 1 whatever its input). The variant's side is the framework's autodiff as users
take it (`jax.grad`, ``backward``), compiled on a compiled variant. The reference's side, in
float64, is the first of these that applies:

* the user's ``reference_vjp``;
* the complex step, ``Im S(x + ih e_j) / h``, exact to rounding, where the reference takes
  complex input and is analytic there (checked against coarse central differences);
* Richardson-extrapolated central differences, with the estimate of their own error, which
  widens the tolerance where the reference is not smooth (a kink nearby).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._inputs import Inputs, Key
from ._results import DEFAULT_RTOL, compare, dtype_name, flatten, kind_of, unflatten

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant

#: Central-difference steps of the Richardson table, relative to ``max(1, |x|)``.
_FIRST_STEP, _LEVELS = 2.0**-5, 4


def weights_for(expected: Any) -> dict[str, np.ndarray]:
    """The fixed random weights `w`, by path, one array for each real floating array leaf of
    the reference's result: the leaves differentiated."""
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        path: rng.standard_normal(np.shape(leaf))
        for path, leaf in flatten(expected)
        if hasattr(leaf, "dtype") and kind_of(dtype_name(leaf)) == "real floating"
    }


#: Per input key: the reference's gradient, the bound on its error, and how it was found.
Exact = dict[Key, tuple["np.ndarray", "np.ndarray", str]]


def gradient_failure(
    v: Variant,
    call: Callable[[list[Any], dict[str, Any]], Any],
    inputs: Inputs,
    exact: Exact,
    weights: dict[str, np.ndarray],
    result: Any,
    *,
    rtol: float | None,
) -> str:
    """What is wrong with the gradients on `v`, or "" when each agrees with `exact`, the
    reference's (`reference_gradients`).

    `call(args, kwargs)` calls the function on `v` in its mode; `result` is what it returned
    there (its leaves' dtypes give the weights theirs). The tolerance is ten times the values'.
    """
    if not exact:
        return ""
    got = _autodiff_gradients(v, call, inputs, weights, result, list(exact))
    problems = []
    for key, (gradient, error, method) in exact.items():
        precision = inputs.arrays[key].dtype.name
        tol = 10 * (DEFAULT_RTOL.get(precision, 1e-12) if rtol is None else rtol)
        mismatch = compare(
            got[key], gradient, precision=precision, rtol=tol, atol=None, slack=error
        )
        if mismatch:
            problems.append(
                f"d sum(w * fn) / d {inputs.describe(key)} disagrees with the {method}: {mismatch}"
            )
    return "; ".join(problems)


def _autodiff_gradients(
    v: Variant,
    call: Callable[[list[Any], dict[str, Any]], Any],
    inputs: Inputs,
    weights: dict[str, np.ndarray],
    result: Any,
    keys: list[Key],
) -> dict[Key, np.ndarray]:
    import numpy as np

    args, kwargs = inputs.on(v)
    leaf_dtypes = {path: dtype_name(leaf) for path, leaf in flatten(result) if path in weights}
    w = {path: v.asarray(weights[path], dtype=leaf_dtypes[path]) for path in weights}
    xp = v.xp

    def weighted_sum(*arrays: Any) -> Any:
        call_args, call_kwargs = list(args), dict(kwargs)
        for key, array in zip(keys, arrays, strict=True):
            if isinstance(key, int):
                call_args[key] = array
            else:
                call_kwargs[key] = array
        leaves = dict(flatten(call(call_args, call_kwargs)))
        total = None
        for path, weight in w.items():
            term = xp.sum(xp.multiply(weight, leaves[path]))
            total = term if total is None else xp.add(total, term)
        return total

    chosen = [args[k] if isinstance(k, int) else kwargs[k] for k in keys]
    found = v.backend.gradients(weighted_sum, chosen)
    return {k: v.to_numpy(g).astype(np.float64) for k, g in zip(keys, found, strict=True)}


def reference_gradients(
    inputs: Inputs,
    reference: Callable[..., Any],
    reference_vjp: Callable[..., Any] | None,
    expected: Any,
    weights: dict[str, np.ndarray],
) -> Exact:
    """Per real floating input: the gradient of ``sum(w * reference)``, the bound on its error,
    and how it was found; empty when nothing is differentiable."""
    import numpy as np

    keys = inputs.floating_keys()
    if not keys or not weights:
        return {}

    if reference_vjp is not None:
        structured = isinstance(expected, (tuple, list, dict))
        cotangent = unflatten(expected, weights) if structured else weights[""]
        given = inputs.run_reference(lambda *a, **k: reference_vjp(cotangent, *a, **k))
        given = list(given) if isinstance(given, (tuple, list)) else [given]
        if len(given) != len(keys):
            raise ValueError(
                f"reference_vjp returned {len(given)} gradient(s); expected {len(keys)}, one per "
                "floating array argument"
            )
        return {
            k: (
                _as_gradient(g, inputs.arrays[k]),
                np.zeros(inputs.arrays[k].shape),
                "reference_vjp",
            )
            for k, g in zip(keys, given, strict=True)
        }

    def weighted(strict: bool = False, **replaced: Any) -> complex:
        """``sum(w * reference)`` at the inputs with `replaced` ones; with `strict`, a warning
        of the reference raises."""
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("error" if strict else "ignore")
            out = dict(flatten(inputs.run_reference(reference, **replaced)))
        return complex(sum(np.sum(weights[p] * np.asarray(out[p])) for p in weights))

    found = {}
    for key in keys:
        x = inputs.arrays[key].astype(np.float64)
        stepped = _complex_step(x, key, weighted)
        if stepped is not None:
            found[key] = (stepped, np.zeros_like(x), "complex-step derivative")
        else:
            gradient, error = _richardson(x, key, weighted)
            found[key] = (gradient, error, "Richardson-extrapolated differences")
    return found


def _complex_step(x: np.ndarray, key: Key, weighted: Callable[..., complex]) -> np.ndarray | None:
    """The complex-step gradient, or None where the reference does not take it (an error, a
    warning, or disagreement with coarse central differences: it is not analytic there)."""
    import numpy as np

    gradient = np.empty_like(x)
    for index in np.ndindex(x.shape):
        h = 1e-20 * max(1.0, abs(float(x[index])))
        moved = x.astype(np.complex128)
        moved[index] += 1j * h
        try:
            gradient[index] = weighted(strict=True, **{str(key): moved}).imag / h
        except Exception:  # noqa: BLE001 (a reference that refuses complex input: use differences)
            return None
    coarse = _central(x, key, weighted, 1e-6)
    scale = max(float(np.max(np.abs(coarse), initial=0.0)), 1e-300)
    if not np.all(np.abs(gradient - coarse) <= 1e-5 * (np.abs(coarse) + scale)):
        return None
    return gradient


def _central(
    x: np.ndarray, key: Key, weighted: Callable[..., complex], relative: float
) -> np.ndarray:
    import numpy as np

    gradient = np.empty_like(x)
    for index in np.ndindex(x.shape):
        h = relative * max(1.0, abs(float(x[index])))
        sides = []
        for sign in (1.0, -1.0):
            moved = x.copy()
            moved[index] += sign * h
            sides.append(weighted(**{str(key): moved}).real)
        gradient[index] = (sides[0] - sides[1]) / (2 * h)
    return gradient


def _richardson(
    x: np.ndarray, key: Key, weighted: Callable[..., complex]
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences at steps h, h/2, h/4, h/8, extrapolated (each level removes the next
    even power of h from the error); the last two extrapolations' difference, plus the rounding
    of the smallest step, estimate the error."""
    import numpy as np

    gradient, error = np.empty_like(x), np.empty_like(x)
    eps = float(np.finfo(np.float64).eps)
    for index in np.ndindex(x.shape):
        scale = max(1.0, abs(float(x[index])))
        table: list[list[float]] = []
        values = []
        for level in range(_LEVELS):
            h = _FIRST_STEP * scale / 2**level
            sides = []
            for sign in (1.0, -1.0):
                moved = x.copy()
                moved[index] += sign * h
                sides.append(weighted(**{str(key): moved}).real)
            values.extend(sides)
            row = [(sides[0] - sides[1]) / (2 * h)]
            for m in range(1, level + 1):
                row.append(row[m - 1] + (row[m - 1] - table[level - 1][m - 1]) / (4**m - 1))
            table.append(row)
        gradient[index] = table[-1][-1]
        rounding = (
            10 * eps * max(abs(s) for s in values) / (_FIRST_STEP * scale / 2 ** (_LEVELS - 1))
        )
        error[index] = abs(table[-1][-1] - table[-1][-2]) + rounding
    return gradient, np.where(np.isfinite(error), error, np.inf)


def _as_gradient(given: Any, x: np.ndarray) -> np.ndarray:
    import numpy as np

    gradient = np.asarray(given, dtype=np.float64)
    if gradient.shape != x.shape:
        raise ValueError(
            f"reference_vjp gave a gradient of shape {gradient.shape} for an input of shape {x.shape}"
        )
    return gradient
