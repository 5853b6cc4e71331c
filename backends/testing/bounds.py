"""The accuracy bounds as numbers (spec: Accuracy): how far from the exact value each result may be.

One source for the test suite and ``xpsoftmax compare``. Errors are in units of the dtype's machine
epsilon, relative to ``max(|exact|, scale, tiny)``: the exact value itself, or a larger `error_scale`
where the function cancels, or the smallest normal number (below which the spacing of floats is
constant). The bounds, with ``z = (x - max) / T`` the shifted logit of an entry:

* float16 and bfloat16 are computed in float32 and rounded once, so every function is within 1 eps
  of the exact value (spec: Accuracy, 1 ulp of the correctly rounded result).
* log_softmax: 4 eps relative on every entry but a slice's maxima, where the result near 0 is
  ``-log1p(t)`` with t the tail ``sum exp(z_j)``: its relative error is that of t, into which the
  rounding of each shifted logit enters times ``|z_j|``, so the bound there is ``4 + 2 |z|max``.
  That is "a few ulps, also near 0" when the tail logits are near the maximum, and far better than
  ``x - max - log(sum)``, whose relative error near 0 is of order 1.
* logsumexp: 4 eps relative to ``max(|exact|, max |x|)``: ``max + T log(total)`` cancels where the
  result crosses 0, an ill-conditioning of the function, not of the algorithm.
* softmax: ``4 + 2 |z|`` eps relative: both rounding errors of the shift and scale enter exp
  multiplied by ``|z|`` (Blanchard, Higham & Higham's bound for the shifted algorithm).
* Jacobians: two softmax factors, ``8 + 4 |z|max`` relative, ``|z|max`` the largest of the slice.
* JVP/VJP: the same plus n for the inner product, relative to the scale of the terms
  (``s (|v| + <s, |v|>) / T`` and similar), since ``v - <s, v>`` cancels when v is nearly constant.
* cross_entropy: a sum of non-negative terms ``q_i (-log_softmax_i)``: ``4 + n + samples``.

Examples
--------
>>> import numpy as np
>>> from xpsoftmax.testing import bounds, oracle
>>> x = np.array([0.0, -3.0])
>>> float(bounds.allowed_error("log_softmax", "float32", x)[0])  # the maximum: 4 + 2 * 3
10.0
>>> err = bounds.scaled_ulp_error(np.array([1.0, 0.0]), oracle.softmax(x), "float32")
>>> bool(err[1] > bounds.allowed_error("softmax", "float32", x)[1])  # 0 for 0.047: far off
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import oracle

__all__ = ["allowed_error", "error_scale", "normalise_axes", "scaled_ulp_error"]

LOW_PRECISION = ("float16", "bfloat16")
JACOBIANS = ("softmax_jacobian", "log_softmax_jacobian")
PRODUCTS = ("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp")


def normalise_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (an int, a tuple or None) as a tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def _included(x: np.ndarray, where: np.ndarray | None) -> np.ndarray:
    finite: np.ndarray = np.isfinite(x)
    return finite if where is None else finite & where


def _shifted(x: np.ndarray, axis: Any, t: Any, where: Any) -> np.ndarray:
    """|z| = |x - max| / T per entry, 0 where the entry is excluded or not finite."""
    axes = normalise_axes(axis, x.ndim)
    included = _included(x, where)
    if x.size == 0:
        return np.zeros(x.shape)
    masked = np.where(included, x, -np.inf)
    m = np.max(masked, axis=axes, keepdims=True)
    with np.errstate(invalid="ignore"):
        z = np.abs(masked - m) / np.asarray(t, dtype=np.float64)
    return np.where(included & np.isfinite(m), z, 0.0)


def allowed_error(
    name: str,
    dtype: str,
    x: np.ndarray,
    axis: Any = -1,
    temperature: Any = 1.0,
    where: Any = None,
) -> np.ndarray | float:
    """The bound, in eps of `dtype`, for each entry of function `name` at logits `x` (float64).

    Broadcastable to the result of `name` (see the module docstring for each function).
    """
    if dtype in LOW_PRECISION:
        return 1.0
    if name == "logsumexp":
        return 4.0
    z = _shifted(x, axis, temperature, where)
    if name == "softmax":
        return 4.0 + 2.0 * z
    axes = normalise_axes(axis, x.ndim)
    n: int = math.prod(x.shape[a] for a in axes)
    zmax = np.max(z, axis=axes, keepdims=True) if z.size else np.zeros(z.shape)
    if name == "log_softmax":
        # At a slice's maximum the result is -log1p(t), whose relative error is that of the tail.
        return np.where(_included(x, where) & (z == 0), 4.0 + 2.0 * zmax, 4.0)
    if name == "cross_entropy":
        return 4.0 + n + x.size / max(n, 1)
    bound = 8.0 + 4.0 * zmax
    if name in PRODUCTS:
        bound = bound + n
    if name in JACOBIANS:
        # (*batch, 1, 1) against the Jacobian's (*batch, n, n)
        bound = np.expand_dims(np.moveaxis(bound, axes[0], -1), -1)
    return bound


def error_scale(
    name: str,
    x: np.ndarray,
    u: Any = None,
    axis: Any = -1,
    temperature: Any = 1.0,
    where: Any = None,
    exact: Any = None,
) -> np.ndarray | None:
    """The magnitude errors of `name` are measured against where it cancels; None: the value itself.

    `u` is the tangent v or cotangent g of a JVP or VJP; `exact` is the exact result (its shape is
    that of a logsumexp of an empty input).
    """
    if name == "logsumexp":
        axes = normalise_axes(axis, x.ndim)
        magnitudes = np.where(_included(x, where), np.abs(x), 0.0)
        return np.max(magnitudes, axis=axes) if x.size else np.zeros(np.shape(exact))
    if name not in PRODUCTS:
        return None
    s = oracle.to_float(oracle.softmax(x, axis, temperature, where))
    au = np.abs(np.broadcast_to(u, x.shape))
    if where is not None:
        au = np.where(where, au, 0.0)
    scale: np.ndarray
    if name == "log_softmax_vjp":
        scale = au + s * np.sum(au, axis=axis, keepdims=True)
    else:
        scale = au + np.sum(s * au, axis=axis, keepdims=True)
        if name.startswith("softmax"):
            scale = s * scale
    return scale / np.asarray(temperature, dtype=np.float64)


def scaled_ulp_error(
    result: np.ndarray, exact: Any, dtype: str, scale: Any = None, flushed: bool = False
) -> np.ndarray:
    """`oracle.ulp_error` of `result` against the oracle's `exact` values, scaled to `scale`.

    ``|result - exact| / max(|exact|, scale, tiny) / eps``, entry by entry in mpmath: the measure
    `allowed_error` bounds, with `error_scale` as `scale` where the function cancels (without
    `scale`, plain `oracle.ulp_error`). `accuracy.vectorised_ulp_error` measures the same from a
    double-double copy of the exact values, for long rows.

    With `flushed` (a backend that flushes subnormal results to zero, as XLA does on CPU), a 0
    where the exact value is below the smallest normal number counts as exact.
    """
    err = oracle.ulp_error(result, exact, dtype)
    if flushed:
        below = np.abs(oracle.to_float(exact)) < oracle.TINY[dtype]
        err = np.where((np.asarray(result) == 0) & below, 0.0, err)
    if scale is None:
        return err
    magnitude = np.abs(oracle.to_float(exact))
    tiny = oracle.TINY[dtype]
    with np.errstate(invalid="ignore"):
        ratio = np.maximum(magnitude, tiny) / np.maximum(np.maximum(magnitude, scale), tiny)
    return np.where(np.isfinite(err) & (err > 0), err * np.nan_to_num(ratio, nan=1.0), err)
