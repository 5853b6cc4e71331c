"""Chunked lazy arrays (Dask's): a function of whole slices, mapped over the chunks.

Where every slice along the reduced axes lies whole in one chunk (the usual layout for a
softmax over classes, and for a loss over tokens), a chunk holds everything its part of the
result needs. The eager function then runs on each chunk's own array (NumPy's, CuPy's), one
task per chunk: the same code and the same bits as an eager call on that chunk, and a graph of
one layer, built without computing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .namespaces import Array, is_lazy_array

__all__ = ["ChunkMap", "chunk_map"]

#: ``map(fn, *arrays, dtype=..., reduced=(), keepdims=False, whole=())``: fn(x's chunk, the
#: arrays' matching chunks, the `whole` arrays) on every chunk of x, as a lazy array of x's
#: library with the given dtype, shaped like x but for the `reduced` axes, dropped (or of
#: length 1 with `keepdims`).
ChunkMap = Callable[..., Array]


def chunk_map(x: Array, axes: tuple[int, ...]) -> ChunkMap | None:
    """The map over x's chunks, when x is a lazy array split into chunks (it has ``chunks`` and
    ``map_blocks``, as Dask's arrays do) and no slice along `axes` spans two of them; None
    otherwise (where the composition of standard operations serves)."""
    chunks = getattr(x, "chunks", None)
    map_blocks = getattr(x, "map_blocks", None)
    if not (isinstance(chunks, tuple) and callable(map_blocks) and is_lazy_array(x)):
        return None
    if any(len(chunks[axis]) != 1 for axis in axes):
        return None

    def mapped(
        fn: Callable[..., Array],
        *arrays: Array,
        dtype: Any,
        reduced: tuple[int, ...] = (),
        keepdims: bool = False,
        whole: tuple[Array, ...] = (),
    ) -> Array:
        # `whole` arrays come after the chunked ones, each whole, to every task.
        aligned = [_aligned(a, chunks, axes) for a in arrays] + [_whole(a) for a in whole]
        if keepdims:
            kept = tuple((1,) if i in reduced else c for i, c in enumerate(chunks))
            return map_blocks(fn, *aligned, dtype=dtype, chunks=kept)
        return map_blocks(fn, *aligned, dtype=dtype, drop_axis=reduced)

    return mapped


def _aligned(a: Array, chunks: tuple[tuple[int, ...], ...], whole: tuple[int, ...]) -> Array:
    """`a` (of as many dimensions as x) split as x is, so that chunk i of x meets chunk i of
    a: along the `whole` axes (and where a has length 1, to broadcast) one chunk of a's own
    length, elsewhere x's chunks."""
    wanted = tuple(
        (n,) if i in whole or n == 1 else c
        for i, (c, n) in enumerate(zip(chunks, a.shape, strict=True))
    )
    return a if tuple(a.chunks) == wanted else a.rechunk(wanted)


def _whole(a: Array) -> Any:
    """`a` as one piece that every task receives whole (Dask: one chunk, as a delayed value)."""
    to_delayed = getattr(a, "to_delayed", None)
    if not callable(to_delayed):
        return a
    return a.rechunk(tuple(a.shape)).to_delayed()[(0,) * a.ndim]
