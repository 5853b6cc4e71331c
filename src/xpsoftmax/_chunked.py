"""The public functions on chunked lazy arrays (Dask's), a task per chunk (see
`xpsoftmax._platform.chunks`).

Where every slice along the reduced axes lies whole in one chunk (`by_chunks`), each function
runs itself on every chunk's own array, with the chunks of its array arguments beside it: one
task per chunk, the eager bits. Where slices span chunks (`by_chunk_statistics`), softmax,
log_softmax and logsumexp normalise each chunk in a task of its own, combine the slices'
statistics, and finish each chunk from them (`xpsoftmax._kernels.chunk_statistics`): each
chunk is read twice, as by the bare max and sum of exponentials, and exponentiated once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ._kernels.chunk_statistics import (
    STATISTICS,
    combined_statistics,
    finished_chunk,
    log_sum_exp,
    statistics_of_chunk,
)
from ._platform import Array, Chunked, Namespace, chunk_map, chunks_of
from ._validation import Prepared

__all__ = ["by_chunk_statistics", "by_chunks"]


def by_chunks(
    fn: Callable[..., Array],
    x: Array,
    p: Prepared,
    arrays: dict[str, Array | float | None],
    options: dict[str, Any],
    **map_options: Any,
) -> Array | None:
    """``fn(chunk, **arrays' chunks, **options)`` on each chunk of x (a public function of
    the checked call `p`), or None where x is not chunked with whole slices.

    `arrays` are fn's keyword arguments that may be arrays of x's library, each broadcastable
    to x (Python numbers and None go with `options`); `map_options` give the result's shape
    where it differs from x's (`xpsoftmax._platform.Chunked.map`).
    """
    mapper = chunk_map(x, p.axes)
    if mapper is None:
        return None
    names, given, options = _split(p.xp, x, arrays, options)
    call = functools.partial(_call, fn, names, options)
    return mapper(call, *given, **{"dtype": p.result_dtype, **map_options})


def by_chunk_statistics(kind: str, x: Array, p: Prepared, axis: object) -> Array | None:
    """softmax, log_softmax or logsumexp (`kind`; logsumexp in the compute dtype, with the
    reduced axes kept) of a chunked lazy array whose slices span chunks, in the three steps of
    `xpsoftmax._kernels.chunk_statistics`, a task per chunk (the second, per run of chunks
    that make whole slices); None where x is not chunked."""
    chunked = chunks_of(x)
    if chunked is None:
        return None
    xp, axes, dtype = p.xp, p.axes, p.x.dtype
    arrays = {"where": p.where, "temperature": p.temperature}
    names, given, options = _split(xp, x, arrays, {"axis": axis})
    tail = {"tail": kind != "softmax"}  # (softmax has no use for the tail below the top)
    step = functools.partial(_call, statistics_of_chunk, names, {**options, **tail})
    statistics = chunked.map(
        step, *given, dtype=dtype, reduced=axes, keepdims=True, stacked=STATISTICS
    )
    # The slices' temperatures, beside the statistics' last axis.
    t_names, t_given, t_options = _split(xp, statistics, {"temperature": _stacked(xp, p)}, {})
    step = functools.partial(_call, _combined, t_names, {**t_options, "axes": axes})
    combined = (
        Chunked(statistics)
        .joined(axes)
        .map(step, *t_given, dtype=dtype, reduced=axes, keepdims=True)
    )
    if kind == "logsumexp":
        step = functools.partial(_call, _log_sum_exp, t_names, t_options)
        return Chunked(combined).map(step, *t_given, dtype=dtype, reduced=(x.ndim,))
    maximum, total, log_total = (combined[..., i] for i in (0, 2, 3))
    names = ("maximum", "total", "log_total", *names)
    step = functools.partial(_call, finished_chunk, names, {**options, "kind": kind})
    return chunked.map(step, maximum, total, log_total, *given, dtype=p.result_dtype)


def _stacked(xp: Namespace, p: Prepared) -> float | Array:
    """The temperature with a last axis of length 1 added, to stand beside statistics."""
    t = p.temperature
    return t if isinstance(t, float) else xp.expand_dims(t, axis=-1)


def _combined(statistics: Array, temperature: float | Array = 1.0, **options: Any) -> Array:
    return combined_statistics(statistics, _unstacked(temperature), **options)


def _log_sum_exp(combined: Array, temperature: float | Array = 1.0) -> Array:
    return log_sum_exp(combined, _unstacked(temperature))


def _unstacked(t: float | Array) -> float | Array:
    return t if isinstance(t, float) else t[..., 0]


def _split(
    xp: Namespace, x: Array, arrays: dict[str, Array | float | None], options: dict[str, Any]
) -> tuple[tuple[str, ...], list[Array], dict[str, Any]]:
    """(names, arrays) of the keyword arguments that are arrays, each of x's rank so that the
    chunks line up; the others (numbers, None) join `options`."""
    options = dict(options)
    names, given = [], []
    for name, value in arrays.items():
        if value is None or isinstance(value, float):
            options[name] = value
        else:
            names.append(name)
            given.append(_full_rank(xp, x, value))
    return tuple(names), given, options


def _full_rank(xp: Namespace, x: Array, a: Array) -> Array:
    return xp.reshape(a, (1,) * (x.ndim - a.ndim) + tuple(a.shape))


def _call(
    fn: Callable[..., Any],
    names: tuple[str, ...],
    options: dict[str, Any],
    chunk: Array,
    *chunks: Array,
) -> Any:
    return fn(chunk, **dict(zip(names, chunks, strict=True)), **options)
