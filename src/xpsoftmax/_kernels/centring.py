"""Centring a vector on the softmax: ``v - <s, v>`` and its transpose, accurate where one
probability is close to 1.

Both subtract v's value at the slice's largest probability first (``d = v - v_k``, exactly 0
at k), so neither ever forms ``1 - s_k`` by subtraction: that is why
``d log_softmax_0 / d x_0`` at [0, -40] is 4.25e-18 and not 0 (spec: Accuracy). The Jacobian-vector products
and the derivative rules share these.
"""

from __future__ import annotations

from typing import NamedTuple

from .._platform import Array, Namespace, values_are_known
from .arithmetic import subtract
from .indexing import put_at, take_along

__all__ = ["Top", "centred", "centred_cotangent", "top_entry"]


class Top(NamedTuple):
    """Where each slice's top entry is: an index (with whether the slice holds any
    probability), or a mask of the entries above 1/2. Both keep the axis (of length 1 for the
    index)."""

    index: Array | None
    nonempty: Array | None
    above_half: Array | None


def top_entry(xp: Namespace, probs: Array, axis: int) -> Top:
    """The top entry of each slice of `probs`, the entry that centring subtracts first.

    Eager arrays: the index of the largest probability (any entry of a tie serves: centring
    on one of several equal values is exact), read and written at one entry per slice.

    Arrays whose values cannot be read (a compiler's): the entries above 1/2, at most one per
    slice, found elementwise, which a compiler fuses into the passes around it. Only a
    probability above 1/2 can lose digits to ``1 - s``: a slice with none is centred on 0,
    which is then as accurate, and nothing is gathered or scattered (an index costs two more
    reductions to find, and its transpose a scatter).
    """
    if values_are_known(probs):
        index = xp.argmax(probs, axis=axis, keepdims=True)
        return Top(index, take_along(xp, probs, index, axis) > 0, None)
    return Top(None, None, probs > 0.5)


def _at_top(xp: Namespace, v: Array, axis: int, top: Top) -> Array:
    """v's value at each slice's top entry (0 where it has none)."""
    if top.above_half is not None:
        return xp.sum(xp.where(top.above_half, v, 0.0), axis=axis, keepdims=True)
    # An empty slice has no top to centre on (and its probabilities are all 0).
    return xp.where(top.nonempty, take_along(xp, v, top.index, axis), 0.0)


def centred(xp: Namespace, v: Array, probs: Array, axis: int, top: Top) -> Array:
    """``v - <probs, v>`` along `axis`, centred on v at the top entry first (exact there)."""
    d = v - _at_top(xp, v, axis, top)
    return subtract(xp, d, xp.sum(probs * d, axis=axis, keepdims=True))


def centred_cotangent(xp: Namespace, g: Array, probs: Array, axis: int, top: Top) -> Array:
    """The transpose of `centred`: ``a - e_k sum(a)`` with ``a = g - probs sum(g)``.

    At the top entry k this is minus the sum of a's other entries, each small when probs_k
    is close to 1: no digits are lost to ``1 - probs_k``.
    """
    a = g - probs * xp.sum(g, axis=axis, keepdims=True)
    total = xp.sum(a, axis=axis, keepdims=True)
    if top.above_half is not None:
        return a - xp.where(top.above_half, total, 0.0)
    at_top = xp.where(top.nonempty, -total, 0.0)
    return put_at(xp, a, top.index, axis, at_top, add=True)
