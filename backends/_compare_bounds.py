"""SPEC.md's accuracy bounds, as numbers ``xpsoftmax compare`` checks each cell against.

Errors are measured in units of the dtype's machine epsilon ``eps`` (2 ulps of 1.0 is 2 eps):

- log_softmax, logsumexp and cross_entropy (per sample, ``-log_softmax`` at the target): relative
  error of every entry, "a few ulps" in SPEC.md, taken here as `FEW_ULPS`.
- softmax: relative error of every entry within the bound of the shifted algorithm ``exp(x - max) /
  sum``: the subtraction ``x_i - max`` is rounded, an error of up to ``|x_i - max| / 2`` eps after the
  exponential, and the sum of n positive terms adds at most ``n / 2`` eps; `FEW_ULPS` covers the rest.
- Jacobians, JVPs and VJPs: the error of each slice relative to its largest entry (a row of the
  Jacobian, a JVP or VJP vector), within the softmax bound plus the ``n / 2`` eps of the inner
  product. This still catches ``1 - s`` computed by subtraction: for ``x = [0, -40]`` every entry of
  the Jacobian is about 4.25e-18, and a 0 on the diagonal is an error of one whole row maximum.
- float16 and bfloat16: computed in float32 and rounded once, so within 1 ulp of the correctly rounded
  result: 1.5 eps of the exact value (the rounding itself is half an ulp).

Entries whose exact value is subnormal are measured against the smallest normal number times eps, the
spacing of subnormals, rather than relative to themselves.
"""

from __future__ import annotations

import numpy as np

from .oracle import EPS, TINY

#: "A few ulps" (SPEC.md, accuracy of log_softmax and logsumexp), in units of eps.
FEW_ULPS = 4.0
#: Half-precision results are rounded once from float32: 1 ulp of the correctly rounded value.
HALF_PRECISION_BOUND = 1.5
#: Functions measured entry by entry; the others slice by slice.
ELEMENTWISE = ("softmax", "log_softmax", "logsumexp", "cross_entropy")


def scale_of(function: str, truth: np.ndarray, dtype: str) -> np.ndarray:
    """What one eps of error is worth at each entry of `truth` (broadcastable to it).

    Entry by entry for `ELEMENTWISE` functions; the largest magnitude of each slice for the others
    (the last axis of a JVP or VJP, the last two of a Jacobian).
    """
    eps = EPS[dtype]
    magnitude = np.abs(np.nan_to_num(truth, nan=0.0, posinf=0.0, neginf=0.0))
    if function not in ELEMENTWISE and magnitude.ndim:
        axes = (-2, -1) if function.endswith("jacobian") and magnitude.ndim >= 2 else (-1,)
        magnitude = np.max(magnitude, axis=axes, keepdims=True, initial=0.0)
    return eps * np.maximum(magnitude, TINY[dtype])


def bound_in_eps(function: str, dtype: str, x: np.ndarray) -> float:
    """The largest error, in eps, that SPEC.md allows for `function` on the logits `x` (2-D)."""
    if dtype in ("float16", "bfloat16"):
        return HALF_PRECISION_BOUND
    if function in ("log_softmax", "logsumexp", "cross_entropy"):
        return FEW_ULPS
    n = x.shape[-1]
    finite = np.where(np.isfinite(x), x, np.nan)
    spread = float(np.nanmax(np.nanmax(finite, axis=-1) - np.nanmin(finite, axis=-1), initial=0.0))
    softmax_bound = (spread + n) / 2 + FEW_ULPS
    if function == "softmax":
        return softmax_bound
    return softmax_bound + n / 2
