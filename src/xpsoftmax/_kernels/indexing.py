"""One entry per slice: reading it (`take_along`) and writing it (`put_at`).

The entries are given by an index array shaped like the input with the slice axis of length 1
(cross_entropy's targets, a slice's top entry). Where the array is our own mutable temporary,
both go through an integer-array key (`slice_key`): one read or one write per slice, whatever
the array's memory layout. array-api-compat's ``take_along_axis`` and ``take`` cost half a
dozen operations more on some libraries, which they spend on negative indices ours never are.
"""

from __future__ import annotations

from .._platform import (
    Array,
    Namespace,
    array_device,
    can_update_in_place,
    sets_at_integer_indices,
)

__all__ = ["add_finite_at", "is_index", "put_at", "slice_key", "take_along"]


def slice_key(xp: Namespace, a: Array, index: Array, axis: int) -> tuple[Array, ...] | None:
    """An integer-array key that picks each slice's entry at `index` along `axis`: ``a[key]``
    reads them, shaped like `index`, and ``a[key] = values`` writes them. None where the
    general paths of `take_along` and `put_at` serve instead.

    Only for a temporary of ours that we may update, of a library that writes at integer
    indices. (A flat view would need a's memory in row order, which the standard cannot ask
    for: an operation on a transposed input keeps its layout, and reshaping copies it.)
    """
    if a.shape[axis] == 0 or not can_update_in_place(a) or not sets_at_integer_indices(xp):
        return None
    key = []
    for i, n in enumerate(a.shape):
        if i == axis:
            key.append(index)
        else:  # this axis's positions, to broadcast against the index
            shape = tuple(n if j == i else 1 for j in range(a.ndim))
            key.append(xp.reshape(xp.arange(n, device=array_device(a)), shape))
    return tuple(key)


def put_at(
    xp: Namespace,
    a: Array,
    index: Array,
    axis: int,
    values: Array | float,
    add: bool = False,
    key: tuple[Array, ...] | None = None,
) -> Array:
    """a with one entry per slice, at `index` along `axis`, set to (or, with `add`,
    increased by) the per-slice `values`.

    Into a's memory through `slice_key` where there is one (pass it if you have it);
    elsewhere by comparing positions, a pass over a.
    """
    if key is None:
        key = slice_key(xp, a, index, axis)
    if key is not None:
        a[key] = a[key] + values if add else values
        return a
    at_index = is_index(xp, a, index, axis)
    if add:
        return a + xp.where(at_index, values, 0.0)
    return xp.where(at_index, values, a)


def add_finite_at(xp: Namespace, a: Array, index: Array, axis: int, values: Array) -> Array:
    """``put_at(..., add=True)`` for finite `values`: where it cannot write into a, it adds
    the values times a mask of the positions, whose layout is the index's (as a library with
    typed layouts wants, whatever a's layout). A selection between the values and 0 would
    hold a constant of a's size, which XLA may hoist out of a loop over blocks and keep for
    the whole loop."""
    key = slice_key(xp, a, index, axis)
    if key is not None:
        return put_at(xp, a, index, axis, values, add=True, key=key)
    return a + xp.astype(is_index(xp, a, index, axis), a.dtype) * values


def take_along(
    xp: Namespace, a: Array, index: Array, axis: int, key: tuple[Array, ...] | None = None
) -> Array:
    """``take_along_axis(a, index, axis)`` for an index with the axis of length 1.

    Through a's `slice_key` where it is given. A namespace without ``take_along_axis``
    (Dask's), or an axis sharded over devices, selects by comparing positions instead: a pass
    over a, but nothing that outlives the reduction.
    """
    if key is not None:
        return a[key]
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
