"""Centring a vector on the softmax: ``v - <s, v>`` and its transpose, accurate where one
probability is close to 1.

Both subtract v's value at the slice's largest probability first (``d = v - v_k``, exactly 0
at k), so neither ever forms ``1 - s_k`` by subtraction: that is why
``d log_softmax_0 / d x_0`` at [0, -40] is 4.25e-18 and not 0 (spec: Accuracy). The Jacobian-vector products
and the derivative rules share these.

Eager arrays find the top entry by its index (the largest probability; any entry of a tie
serves, centring on one of several equal values is exact), and read and write one entry per
slice there. Arrays whose values cannot be read (a compiler's) mark instead the entries above
1/2, at most one per slice, elementwise, which the compiler fuses into the passes around them:
an index costs two more reductions to find, and its transpose a scatter. Only a probability above
1/2 can lose digits to ``1 - s``, so a slice with none is centred on 0, as accurately.
"""

from __future__ import annotations

from collections.abc import Callable

from .._platform import Array, Namespace, rematerialiser, values_are_known
from .arithmetic import subtract
from .indexing import put_at, take_along

__all__ = ["centred", "centred_cotangent"]


def centred(xp: Namespace, v: Array, probs: Array, axis: int) -> Array:
    """``v - <probs, v>`` along `axis`, centred on v at the top entry first (exact there)."""
    if values_are_known(probs):
        index, nonempty = _top_index(xp, probs, axis)
        # An empty slice has no top to centre on (and its probabilities are all 0).
        d = v - xp.where(nonempty, take_along(xp, v, index, axis), 0.0)
        return subtract(xp, d, xp.sum(probs * d, axis=axis, keepdims=True))

    def at_marks(v: Array, probs: Array) -> Array:
        return xp.sum(xp.where(probs > 0.5, v, 0.0), axis=axis, keepdims=True)

    d = v - _recomputing(probs, at_marks)(v, probs)
    return d - xp.sum(probs * d, axis=axis, keepdims=True)


def centred_cotangent(xp: Namespace, g: Array, probs: Array, axis: int) -> Array:
    """The transpose of `centred`: ``a - e_k sum(a)`` with ``a = g - probs sum(g)``.

    At the top entry k this is minus the sum of a's other entries, each small when probs_k
    is close to 1: no digits are lost to ``1 - probs_k``.
    """
    a = g - probs * xp.sum(g, axis=axis, keepdims=True)
    total = xp.sum(a, axis=axis, keepdims=True)
    if not values_are_known(probs):
        return a - xp.where(probs > 0.5, total, 0.0)
    index, nonempty = _top_index(xp, probs, axis)
    return put_at(xp, a, index, axis, xp.where(nonempty, -total, 0.0), add=True)


def _top_index(xp: Namespace, probs: Array, axis: int) -> tuple[Array, Array]:
    """(index of each slice's largest probability, whether the slice holds any), axis kept."""
    index = xp.argmax(probs, axis=axis, keepdims=True)
    return index, take_along(xp, probs, index, axis) > 0


def _recomputing(
    probs: Array, fn: Callable[[Array, Array], Array]
) -> Callable[[Array, Array], Array]:
    """`fn`, made to recompute its marks in a derivative pass where the library can (JAX's
    checkpoint): a reverse pass then keeps the probabilities alone, as the framework's own
    softmax does, not the marks and the selects' zeros beside them."""
    remat = rematerialiser(probs)
    return fn if remat is None else remat(fn)
