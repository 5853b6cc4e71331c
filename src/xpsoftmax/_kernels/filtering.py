"""Gradient filtering (``filter_eps``, opt-in): a block's gradient products skip the tiles of
classes in which every entry of the logits' gradient is negligible.

Per token, the gradient of the loss in its scaled logits is ``p - y`` (``(S + 2 z_loss lse) p -
q'`` in general), times the softcap's slope where there is one. A tile, the block's tokens by
a run of classes, is skipped where every such entry is below ``filter_eps`` in magnitude: its
share of the hidden gradient and its rows of the weight gradient are taken as zero. The loss is
exact; the gradients lose at most ``filter_eps`` per skipped entry (spec: Linear
cross-entropy). In a trained model most classes of most tokens have probabilities far below
float32's resolution, and where the vocabulary is ordered by frequency (as byte-pair merges
order it) the likely classes cluster in a few tiles.

Eagerly, where the block's gradient is summed in place, the tiles kept are read and joined
into runs of classes, one pair of products per run. Where the library has a conditional
primitive (JAX's ``lax.cond``) each tile's products sit in one, traced once per tile, and only
the branch taken runs.
"""

from __future__ import annotations

from typing import Any

from .._platform import (
    Array,
    Namespace,
    conditional,
    shards_along_first_axis,
    values_are_known,
)
from .arithmetic import add, add_product, product, widened
from .blocks import Head, block_bounds

__all__ = ["FILTER_CLASSES", "filtered_products"]

#: Classes per tile where the tiles kept are read eagerly: a few hundred keep each product
#: near a full one's speed.
FILTER_CLASSES = 256
#: Tiles per block under a conditional primitive, each traced on its own: few enough to
#: keep the trace small.
CONDITIONAL_TILES = 32


def filtered_products(
    xp: Namespace,
    head: Head,
    cotangent: Array,
    g: Array,
    weight: Array,
    h: Array,
    sums: tuple[Array, ...] | None,
    hidden_needed: bool,
) -> tuple[Array | None, tuple[Array, ...] | None] | None:
    """The block's hidden gradient (where `hidden_needed`) and the weight gradient's `sums`
    with its share added, the tiles of negligible entries skipped; None where filtering does
    not apply (no `filter_eps`; neither an eager sum in place nor a conditional primitive; the
    vocabulary split over devices). `cotangent` (rows, V) is in the compute dtype (the
    products cast it where theirs is narrower), `g` the tokens' weights (rows,), `sums` the
    weight gradient in slices of classes (one slice where in place)."""
    eps = head.filter_eps
    if eps is None or cotangent.ndim != 2 or shards_along_first_axis(weight) > 1:
        return None
    # |p - y| < eps for every entry of a token whose loss has weight g: |cotangent| < eps |g| / T.
    bound = xp.abs(g)[:, None] * (eps / head.temperature)
    cond = conditional(cotangent)
    if cond is not None:
        return _conditional(xp, cond, cotangent, bound, weight, h, sums, hidden_needed)
    if not values_are_known(cotangent) or (sums is not None and len(sums) != 1):
        return None
    runs = _kept_runs(xp, cotangent, bound)
    d_hidden = _hidden_sum(xp, cotangent, weight, h, runs) if hidden_needed else None
    if sums is not None:
        (total,) = sums
        for start, stop in runs:
            # (A view of total: the sum in place adds into total itself.)
            add_product(xp, total[start:stop, ...], cotangent[:, start:stop], h)
    return d_hidden, sums


def _hidden_sum(
    xp: Namespace, cotangent: Array, weight: Array, h: Array, runs: list[tuple[int, int]]
) -> Array:
    """The hidden gradient from the kept runs of classes only."""
    total = widened(xp, xp.zeros_like(h))
    for start, stop in runs:
        total = add(xp, total, product(xp, cotangent[:, start:stop], weight[start:stop, ...]))
    return total


def _kept_runs(xp: Namespace, cotangent: Array, bound: Array) -> list[tuple[int, int]]:
    """The runs of classes, tiles of `FILTER_CLASSES` joined, in which some entry is at least
    its token's bound: read from the array now (eager arrays only)."""
    significant = xp.any(xp.abs(cotangent) >= bound, axis=0)
    runs: list[tuple[int, int]] = []
    for start, stop in block_bounds(cotangent.shape[1], FILTER_CLASSES):
        if not bool(xp.any(significant[start:stop])):
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    return runs


def _conditional(
    xp: Namespace,
    cond: Any,
    cotangent: Array,
    bound: Array,
    weight: Array,
    h: Array,
    sums: tuple[Array, ...] | None,
    hidden_needed: bool,
) -> tuple[Array | None, tuple[Array, ...] | None]:
    """`filtered_products` through the library's conditional primitive, one per tile."""
    n_classes = cotangent.shape[1]
    size = max(1, -(-n_classes // CONDITIONAL_TILES))
    hidden_parts, weight_parts = [], []
    for start, stop in block_bounds(n_classes, size):
        tile, rows = cotangent[:, start:stop], weight[start:stop, ...]

        def taken(tile: Array = tile, rows: Array = rows) -> tuple[Array, Array]:
            return product(xp, tile, rows), product(xp, xp.matrix_transpose(tile), h)

        def skipped(rows: Array = rows) -> tuple[Array, Array]:
            return widened(xp, xp.zeros_like(h)), widened(xp, xp.zeros_like(rows))

        d_hidden, d_rows = cond(xp.any(xp.abs(tile) >= bound), taken, skipped)
        hidden_parts.append(d_hidden)
        weight_parts.append(d_rows)
    d_hidden = None
    if hidden_needed:
        d_hidden = hidden_parts[0]
        for part in hidden_parts[1:]:
            d_hidden = d_hidden + part
    if sums is not None:
        share = xp.concat(weight_parts, axis=0)
        offsets = [0]
        for part in sums:
            offsets.append(offsets[-1] + part.shape[0])
        sums = tuple(part + share[offsets[i] : offsets[i + 1], ...] for i, part in enumerate(sums))
    return d_hidden, sums
