"""Centring a vector on the softmax: ``v - <s, v>`` and its transpose, accurate where one
probability is close to 1.

Both subtract v's value at the slice's largest probability first (``d = v - v_k``, exactly 0
at k), so neither ever forms ``1 - s_k`` by subtraction: that is why
``d log_softmax_0 / d x_0`` at [0, -40] is 4.25e-18 and not 0 (spec: Accuracy). The Jacobian-vector products
and the derivative rules share these.
"""

from __future__ import annotations

from .._platform import Array, Namespace, array_device, values_are_known
from .arithmetic import subtract
from .indexing import put_at, take_along

__all__ = ["centred", "centred_cotangent", "top_index"]


def top_index(xp: Namespace, probs: Array, axis: int) -> tuple[Array, Array]:
    """(index of each slice's largest probability, whether the slice holds any probability).

    Both keep the axis with length 1. Any entry of a tie serves: centring on one of several
    equal values is exact.
    """
    if values_are_known(probs):
        index = xp.argmax(probs, axis=axis, keepdims=True)
    else:
        index = _last_top_position(xp, probs, axis)
    return index, take_along(xp, probs, index, axis) > 0


def _last_top_position(xp: Namespace, probs: Array, axis: int) -> Array:
    """The position of the last of each slice's largest entries, by plain arithmetic and two max
    reductions, for arrays whose values cannot be read: a compiler fuses these into the
    surrounding passes, where an argmax is a reduction of value-position pairs of its own.

    ``1 + (probs - largest) / largest`` is 1 exactly at the largest entries (the difference
    is an exact 0 there, whatever the compiler makes of the division) and below 1 elsewhere,
    so its floor marks them; times the positions, its maximum is the last of them. (An entry
    within rounding of the largest may be marked too: centring on a near-tie keeps every
    digit, as no probability near 1 is involved.) Positions are counted in probs' dtype: exact
    below 2**24 entries per slice in float32 (past that, a neighbouring entry may serve, which
    keeps the result but not its digits at the top). An empty slice gives its last position,
    a NaN one 0: neither has a top to centre on, which `top_index` tells from probs there.
    """
    n = probs.shape[axis]
    largest = xp.max(probs, axis=axis, keepdims=True)
    is_top = xp.floor(1.0 + (probs - largest) / xp.where(largest > 0, largest, 1.0))
    positions = xp.arange(n, device=array_device(probs))  # in the default index dtype
    shape = (n,) + (1,) * (probs.ndim - 1 - axis)
    last = xp.max(
        is_top * xp.reshape(xp.astype(positions, probs.dtype), shape), axis=axis, keepdims=True
    )
    return xp.astype(xp.where(last >= 0, last, 0.0), positions.dtype)


def centred(xp: Namespace, v: Array, probs: Array, axis: int, top: tuple[Array, Array]) -> Array:
    """``v - <probs, v>`` along `axis`, centred on v at the top entry first (exact there)."""
    index, nonempty = top
    # An empty slice has no top to centre on (and its probabilities are all 0).
    d = v - xp.where(nonempty, take_along(xp, v, index, axis), 0.0)
    return subtract(xp, d, xp.sum(probs * d, axis=axis, keepdims=True))


def centred_cotangent(
    xp: Namespace, g: Array, probs: Array, axis: int, top: tuple[Array, Array]
) -> Array:
    """The transpose of `centred`: ``a - e_k sum(a)`` with ``a = g - probs sum(g)``.

    At the top entry k this is minus the sum of a's other entries, each small when probs_k
    is close to 1: no digits are lost to ``1 - probs_k``.
    """
    index, nonempty = top
    a = g - probs * xp.sum(g, axis=axis, keepdims=True)
    at_top = xp.where(nonempty, -xp.sum(a, axis=axis, keepdims=True), 0.0)
    return put_at(xp, a, index, axis, at_top, add=True)
