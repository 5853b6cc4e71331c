"""One entry per slice: reading it (`take_along`) and writing it (`put_at`).

The entries are given by an index array shaped like the input with the slice axis of length 1
(cross_entropy's targets, a slice's top entry). Where the array is our own mutable temporary
and the axis is its last, both go through a flat view of it at precomputed positions
(`flat_positions`): one read or one write per slice. array-api-compat's ``take_along_axis``
and ``take`` cost half a dozen operations more on some libraries, which they spend on negative
indices ours never are.
"""

from __future__ import annotations

import math

from ._compat import (
    Array,
    Namespace,
    array_device,
    can_update_in_place,
    sets_at_integer_indices,
)

__all__ = ["flat_positions", "is_index", "put_at", "take_along"]


def flat_positions(xp: Namespace, a: Array, index: Array, axis: int) -> Array | None:
    """The positions of a's entries at `index` along `axis` in a flat view of a, or None.

    Only for a temporary of ours that we may update (fresh, so laid out row by row) along its
    last axis, of a library that writes at integer indices; None elsewhere, where
    `take_along` and `put_at` take their general paths.
    """
    n = a.shape[axis]
    if n == 0 or axis != a.ndim - 1 or not can_update_in_place(a):
        return None
    if not sets_at_integer_indices(xp):
        return None
    starts = xp.arange(0, math.prod(a.shape), n, device=array_device(a))
    return xp.reshape(index, (-1,)) + starts


def put_at(
    xp: Namespace,
    a: Array,
    index: Array,
    axis: int,
    values: Array | float,
    add: bool = False,
    positions: Array | None = None,
) -> Array:
    """a with one entry per slice, at `index` along `axis`, set to (or, with `add`,
    increased by) the per-slice `values`.

    Into a's memory through `flat_positions` where they exist (pass them if you have them);
    elsewhere by comparing positions, a pass over a.
    """
    if positions is None:
        positions = flat_positions(xp, a, index, axis)
    if positions is not None:
        flat = xp.reshape(a, (-1,))
        if not isinstance(values, float):
            if tuple(values.shape) != tuple(index.shape):
                values = xp.broadcast_to(values, tuple(index.shape))
            values = xp.reshape(values, (-1,))
        flat[positions] = flat[positions] + values if add else values
        return a
    at_index = is_index(xp, a, index, axis)
    if add:
        return a + xp.where(at_index, values, 0.0)
    return xp.where(at_index, values, a)


def take_along(
    xp: Namespace, a: Array, index: Array, axis: int, positions: Array | None = None
) -> Array:
    """``take_along_axis(a, index, axis)`` for an index with the axis of length 1.

    Through a flat view where a's `flat_positions` are given. A namespace without
    ``take_along_axis`` (Dask's), or an axis sharded over devices, selects by comparing
    positions instead: a pass over a, but nothing that outlives the reduction.
    """
    if positions is not None:
        return xp.reshape(xp.reshape(a, (-1,))[positions], tuple(index.shape))
    if hasattr(xp, "take_along_axis"):
        try:
            return xp.take_along_axis(a, index, axis=axis)
        except Exception as error:
            # A gather along an axis split over devices has no single sharding for its result
            # (JAX's explicit mesh axes refuse it while tracing); the reduction below has.
            if type(error).__name__ != "ShardingTypeError":
                raise
    at_index = is_index(xp, a, index, axis)
    if a.dtype == xp.bool:
        return xp.any(at_index & a, axis=axis, keepdims=True)
    return xp.sum(xp.where(at_index, a, 0.0), axis=axis, keepdims=True)


def is_index(xp: Namespace, like: Array, index: Array, axis: int) -> Array:
    """A boolean array shaped like `like`: True where the position along `axis` is `index`."""
    n = like.shape[axis]
    positions = xp.arange(n, device=array_device(like))
    positions = xp.reshape(positions, (n,) + (1,) * (like.ndim - 1 - axis))
    return positions == index
