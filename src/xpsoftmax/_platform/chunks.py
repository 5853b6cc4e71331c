"""Chunked lazy arrays (Dask's): functions mapped over the chunks, one task per chunk.

Where every slice along the reduced axes lies whole in one chunk (the usual layout for a
softmax over classes, and for a loss over tokens), a chunk holds everything its part of the
result needs (`chunk_map`): the eager function runs on each chunk's own array (NumPy's,
CuPy's), the same code and the same bits as an eager call on that chunk, in a graph of one layer
built without computing anything. Where a slice spans chunks, `chunks_of` maps the steps of
`xpsoftmax._kernels.chunk_statistics` over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .namespaces import Array, is_lazy_array

__all__ = ["ChunkMap", "Chunked", "chunk_map", "chunks_of"]

#: ``map(fn, *arrays, dtype=..., reduced=(), keepdims=False, whole=())``: see `Chunked.map`.
ChunkMap = Callable[..., Array]


@dataclass(frozen=True)
class Chunked:
    """A lazy array split into chunks, and the map over them."""

    array: Array

    def whole_along(self, axes: tuple[int, ...]) -> bool:
        """Whether no slice along `axes` spans two chunks."""
        return all(len(self.array.chunks[axis]) == 1 for axis in axes)

    def map(
        self,
        fn: Callable[..., Any],
        *arrays: Array,
        dtype: Any,
        reduced: tuple[int, ...] = (),
        keepdims: bool = False,
        whole: tuple[Array, ...] = (),
        stacked: int = 0,
    ) -> Array:
        """fn(a chunk, the arrays' matching chunks, the `whole` arrays) on every chunk, as a
        lazy array with the given dtype, shaped like this one but for the `reduced` axes,
        dropped (or of length 1 per chunk with `keepdims`), and with a last axis of length
        `stacked` where that is not 0 (a few values per chunk and slice)."""
        x, chunks = self.array, self.array.chunks
        aligned = [_aligned(a, chunks, reduced) for a in arrays] + [_whole(a) for a in whole]
        if not (keepdims or stacked):
            return x.map_blocks(fn, *aligned, dtype=dtype, drop_axis=reduced)
        kept = tuple((1,) * len(c) if i in reduced else c for i, c in enumerate(chunks))
        if not stacked:
            return x.map_blocks(fn, *aligned, dtype=dtype, chunks=kept)
        return x.map_blocks(fn, *aligned, dtype=dtype, chunks=(*kept, (stacked,)), new_axis=x.ndim)

    def joined(self, axes: tuple[int, ...]) -> Chunked:
        """This array with each of `axes` in one chunk."""
        return Chunked(self.array.rechunk(dict.fromkeys(axes, -1)))


#: Per array type, whether its arrays map over chunks (``map_blocks``): every call asks, and
#: most arrays are not chunked.
_MAPS_CHUNKS: dict[type, bool] = {}


def chunks_of(x: Array) -> Chunked | None:
    """x as a `Chunked` array, when it is a lazy array split into chunks (it has ``chunks`` and
    ``map_blocks``, as Dask's arrays do); None otherwise."""
    maps_chunks = _MAPS_CHUNKS.get(type(x))
    if maps_chunks is None:
        maps_chunks = _MAPS_CHUNKS.setdefault(type(x), hasattr(type(x), "map_blocks"))
    if maps_chunks and isinstance(getattr(x, "chunks", None), tuple):
        return Chunked(x) if is_lazy_array(x) else None
    return None


def chunk_map(x: Array, axes: tuple[int, ...]) -> ChunkMap | None:
    """The map over x's chunks (`Chunked.map`), when x is chunked and no slice along `axes`
    spans two chunks; None otherwise (where the composition of standard operations serves)."""
    chunked = chunks_of(x)
    return chunked.map if chunked is not None and chunked.whole_along(axes) else None


def _aligned(a: Array, chunks: tuple[tuple[int, ...], ...], whole: tuple[int, ...]) -> Array:
    """`a` (of as many dimensions as x) split as x is, so that chunk i of x meets chunk i of
    a: along the `whole` axes (and where a has length 1, to broadcast) one chunk of a's own
    length, elsewhere x's chunks."""
    wanted = tuple(
        (n,) if (i in whole and len(c) == 1) or n == 1 else c
        for i, (c, n) in enumerate(zip(chunks, a.shape, strict=True))
    )
    return a if tuple(a.chunks) == wanted else a.rechunk(wanted)


def _whole(a: Array) -> Any:
    """`a` as one piece that every task receives whole (Dask: one chunk, as a delayed value)."""
    to_delayed = getattr(a, "to_delayed", None)
    if not callable(to_delayed):
        return a
    return a.rechunk(tuple(a.shape)).to_delayed()[(0,) * a.ndim]
