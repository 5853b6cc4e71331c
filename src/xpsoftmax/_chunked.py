"""A public function on each chunk of a chunked lazy array (`xpsoftmax._platform.chunk_map`).

Where every slice along the reduced axes lies whole in one chunk, the public functions run
themselves on each chunk's own array, with the chunks of their array arguments beside it, and
return the lazy array of those results: one task per chunk, the eager bits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._platform import Array, chunk_map
from ._validation import Prepared

__all__ = ["by_chunks"]


def by_chunks(
    fn: Callable[..., Array],
    x: Array,
    p: Prepared,
    arrays: dict[str, Array | float | None],
    options: dict[str, Any],
    **map_options: Any,
) -> Array | None:
    """``fn(chunk, **arrays' chunks, **options)`` on each chunk of x (a public function of
    the checked call `p`), or None where x is not chunked so.

    `arrays` are fn's keyword arguments that may be arrays of x's library, each broadcastable
    to x (Python numbers and None go with `options`); `map_options` give the result's dtype and
    chunks where they differ from x's.
    """
    mapper = chunk_map(x, p.axes)
    if mapper is None:
        return None
    options = dict(options)
    names, chunked = [], []
    for name, value in arrays.items():
        if value is None or isinstance(value, float):
            options[name] = value
        else:  # as many dimensions as x, for the chunks to line up
            names.append(name)
            chunked.append(p.xp.reshape(value, (1,) * (x.ndim - value.ndim) + tuple(value.shape)))
    call = functools.partial(_call, fn, tuple(names), options)
    return mapper(call, *chunked, **{"dtype": p.result_dtype, **map_options})


def _call(
    fn: Callable[..., Array],
    names: tuple[str, ...],
    options: dict[str, Any],
    chunk: Array,
    *chunks: Array,
) -> Array:
    return fn(chunk, **dict(zip(names, chunks, strict=True)), **options)
