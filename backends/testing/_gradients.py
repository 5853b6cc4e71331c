"""The gradients check: autodiff of the function on a variant against finite differences of the
reference.

The scalar differentiated is ``sum(w * fn(...))`` with a fixed random `w` of the result's shape:
a plain sum would hide errors that cancel (the sum of a softmax is 1 whatever its input). The
framework side goes through the adapters' `~xpsoftmax.backends.Backend.ref_jacobian` (JAX's
``jacrev``, ``torch.func.jacrev``), the whole of it compiled on a compiled variant; the other side is central
differences of the float64 NumPy reference, with steps of ``cbrt(eps) * max(1, |x|)``, whose
error (about 1e-10 relative) is far below any dtype's tolerance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._inputs import Inputs, compare

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant


def gradient_failure(
    v: Variant,
    fn: Callable[..., Any],
    inputs: Inputs,
    reference: Callable[..., Any],
    expected: np.ndarray,
    *,
    rtol: float,
) -> str:
    """What is wrong with `fn`'s gradient on `v` with respect to its first floating input that is
    wrong, or "" when every one agrees with finite differences within `rtol`."""
    import numpy as np

    weights = np.random.default_rng(0).standard_normal(expected.shape)
    for key, original in inputs.arrays.items():
        if not np.issubdtype(original.dtype, np.floating):
            continue
        exact = _central_differences(inputs, reference, key, weights)
        got = _autodiff_gradient(v, fn, inputs, key, weights)
        finite = np.abs(exact[np.isfinite(exact)])
        mismatch = compare(got, exact, rtol=rtol, atol=rtol * float(finite.max(initial=0.0)))
        if mismatch:
            return f"d sum(w * fn) / d {inputs.describe(key)} disagrees with finite differences: {mismatch}"
    return ""


def _autodiff_gradient(
    v: Variant, fn: Callable[..., Any], inputs: Inputs, key: int | str, weights: np.ndarray
) -> np.ndarray:
    """The gradient of ``sum(weights * fn)`` with respect to input `key`, by `v`'s autodiff."""
    original = inputs.arrays[key]
    # Only the shape is closed over: torch.compile would make a NumPy array a tensor input.
    shape = original.shape
    args, kwargs = inputs.on(v)
    xp = v.xp
    w = v.asarray(weights, dtype=original.dtype.name)

    def weighted_sum(flat: Any) -> Any:
        x = xp.reshape(flat, shape)
        call_args = [x if i == key else a for i, a in enumerate(args)]
        call_kwargs = {k: x if k == key else a for k, a in kwargs.items()}
        return xp.reshape(xp.sum(xp.multiply(w, fn(*call_args, **call_kwargs))), (1,))

    def jacobian_of(rows: Any) -> Any:
        return v.backend.ref_jacobian(weighted_sum, rows)

    x = args[key] if isinstance(key, int) else kwargs[key]
    # The whole differentiation compiled on a compiled variant: PyTorch's function transforms
    # run inside torch.compile, not over a compiled function.
    jacobian = v.wrap(jacobian_of)(xp.reshape(x, (1, original.size)))
    return v.to_numpy(jacobian).reshape(original.shape)


def _central_differences(
    inputs: Inputs, reference: Callable[..., Any], key: int | str, weights: np.ndarray
) -> np.ndarray:
    import numpy as np

    x = inputs.arrays[key].astype(np.float64)
    gradient = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = np.cbrt(np.finfo(np.float64).eps) * max(1.0, abs(float(x[index])))
        sides = []
        for sign in (1.0, -1.0):
            moved = x.copy()
            moved[index] += sign * step
            sides.append(
                float(np.sum(weights * inputs.run_reference(reference, **{str(key): moved})))
            )
        gradient[index] = (sides[0] - sides[1]) / (2 * step)
    return gradient
