"""softmax, log_softmax and logsumexp of slices split over chunks, from each chunk's statistics.

Three steps, each eager on the arrays a task holds (`xpsoftmax._chunked` maps them over the
chunks):

1. `statistics_of_chunk`: each chunk normalised on its own (`normalise`), its slices'
   maximum, offset, total and the part of the total below its top (`below_top`).
2. `combined_statistics`: per slice, over its chunks, the maximum M, the offset O and

       total = sum_c weight_c total_c,   weight_c = exp((offset_c - O) / T)

   (1 for a chunk whose maximum is M, 0 for a chunk without +inf in a slice holding +inf),
   and L = log(total), accurate near 1: the tail below the top is the chunks' below-top sums
   where their maximum is M, their weighted totals elsewhere.
3. `finished_chunk`: each chunk normalised again against M, its exponentials divided by the
   total (softmax) or its shifted logits less L (log_softmax).

No chunk-sized array outlives its task: fresh memory that stays costs a page fault per page,
more than exponentiating again. Special values (spec: Special values) are decided per chunk,
eagerly, where the chunk is.
"""

from __future__ import annotations

from typing import Any

from .._platform import Array, Namespace, array_namespace
from .._validation import prepare
from .arithmetic import divide, scale, subtract
from .normalise import below_top, normalise

__all__ = [
    "STATISTICS",
    "combined_statistics",
    "finished_chunk",
    "log_sum_exp",
    "statistics_of_chunk",
]

#: What `statistics_of_chunk` stacks along a last axis, in order, and `combined_statistics`.
STATISTICS = 4


def statistics_of_chunk(
    chunk: Array,
    where: Array | None = None,
    temperature: float | Array = 1.0,
    *,
    axis: Any,
    tail: bool,
) -> Array:
    """Per slice (reduced axes kept, a last axis added): maximum, offset, total, and with
    `tail` the total below the top (else the total again)."""
    p = prepare(chunk, axis=axis, temperature=temperature, where=where)
    n = normalise(p, totals_only=not tail)
    below = below_top(p, n) if tail else n.total
    return p.xp.stack([n.maximum, n.offset, n.total, below], axis=-1)


def combined_statistics(
    statistics: Array, temperature: float | Array = 1.0, *, axes: tuple[int, ...]
) -> Array:
    """Per slice: maximum, offset, total and its accurate log, stacked along a last axis, from
    `statistics_of_chunk`'s of every chunk along the reduced `axes` (laid side by side)."""
    xp = array_namespace(statistics)
    maximum_c, offset_c, total_c, below_c = (statistics[..., i] for i in range(STATISTICS))
    maximum = xp.max(maximum_c, axis=axes, keepdims=True)
    offset = xp.where(xp.isinf(maximum), 0.0, maximum)
    # (A difference past the float range is -inf, set so: computing it would warn.)
    lowest = xp.maximum(offset, 0.0) - xp.finfo(offset.dtype).max
    difference = xp.where(offset_c < lowest, -xp.inf, offset_c) - offset
    log_weight = scale(xp, difference, temperature, nonpositive=True)
    log_weight = xp.where(maximum == xp.inf, -xp.inf, log_weight)
    at_top = maximum_c == maximum
    weighted = total_c * xp.exp(xp.where(at_top, 0.0, log_weight))
    total = xp.sum(weighted, axis=axes, keepdims=True)
    tail = xp.sum(xp.where(at_top, below_c, weighted), axis=axes, keepdims=True)
    # (Empty slices: log 0 is taken as 0, and their -inf entries stay -inf.)
    log_total = xp.log(xp.where(total == 0, 1.0, total))
    log_total = xp.where(total < 2, xp.log1p(xp.where(tail > 0, tail, 0.0)), log_total)
    return xp.stack([maximum, offset, total, log_total], axis=-1)


def finished_chunk(
    chunk: Array,
    maximum: Array,
    total: Array,
    log_total: Array,
    where: Array | None = None,
    temperature: float | Array = 1.0,
    *,
    axis: Any,
    kind: str,
) -> Array:
    """One chunk's softmax or log_softmax (`kind`), from its slices' combined statistics."""
    p = prepare(chunk, axis=axis, temperature=temperature, where=where)
    if kind == "log_softmax":
        n = normalise(p, maximum=maximum, exponentials=False)
        return p.finish(subtract(p.xp, n.shifted, log_total))
    n = normalise(p, keep_shifted=False, maximum=maximum, with_total=False)
    return p.finish(divide(p.xp, n.exp_shifted, p.xp.where(total == 0, 1.0, total)))


def log_sum_exp(combined: Array, temperature: float | Array) -> Array:
    """logsumexp of the slices, reduced axes kept, from their `combined_statistics`."""
    xp: Namespace = array_namespace(combined)
    maximum, offset, total, log_total = (combined[..., i] for i in range(STATISTICS))
    out = offset + temperature * log_total
    out = xp.where(maximum == xp.inf, xp.inf, out)
    return xp.where(total == 0, -xp.inf, out)
