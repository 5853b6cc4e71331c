"""linear_cross_entropy's loss and the gradients of ``sum(g * loss)`` in one pass, a block of
tokens at a time: three matrix products per block (the logits, then the hidden and weight
gradients from the logits' cotangent), where a derivative from a saved logsumexp needs a fourth
to recompute the logits.

Eagerly a Python loop adds each block's weight gradient into one (V, D) array in place. Where
the library has a scan primitive (JAX's ``lax.scan``) the blocks run in it, the weight and bias
gradients carried from one block to the next: a Python loop would be unrolled by the compiler,
which may then run every block at once, each with its own logits.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._platform import (
    Array,
    Namespace,
    block_scan,
    can_update_in_place,
    replicated,
    shards_along_first_axis,
)
from .arithmetic import add_product, product, widened
from .blocks import (
    Head,
    HeadArrays,
    block_bounds,
    block_target,
    logit_cotangent,
    normaliser_parts,
    scaled_logits,
    target_dot,
    token_loss,
)
from .filtering import filtered_products

__all__ = ["HeadGradients", "gradients_and_loss", "stacked_runs", "unstacked_runs"]

#: Which gradients to compute: hidden's, the weight's and the bias's.
ALL = (True, True, True)


class HeadGradients(NamedTuple):
    """The loss per token and the gradients of its weighted sum (None where not asked for)."""

    loss: Array
    hidden: Array | None
    linear_weight: Array | None
    linear_bias: Array | None


class _Sums(NamedTuple):
    """The gradients summed over the blocks so far (None where not asked for): the weight's
    as its slices of classes (`_class_slices`), each None until a block adds to it."""

    linear_weight: tuple[Array | None, ...] | None
    linear_bias: Array | None


def gradients_and_loss(
    xp: Namespace,
    head: Head,
    arrays: HeadArrays,
    g: Array,
    needs: tuple[bool, bool, bool] = ALL,
) -> HeadGradients:
    """The loss per token and the gradients of ``sum(g * loss)`` that `needs` asks for (in
    hidden, the weight and the bias), a block of tokens at a time: `hidden` is (N, D), `g`
    (N,). Through the library's scan primitive where it has one and there are several blocks."""
    hidden, weight, bias, target, class_weight = arrays
    n_tokens = hidden.shape[0]
    scan = block_scan(hidden)
    looped = scan is not None and n_tokens > head.rows
    whole = widened(xp, xp.zeros_like(weight))
    in_place = looped or can_update_in_place(whole)
    bounds = _class_slices(weight, head.rows, in_place)
    parts: tuple[Array | None, ...] = (None,) * len(bounds)
    if in_place or head.filter_eps is not None:
        parts = (whole,) if len(bounds) == 1 else tuple(whole[a:b, ...] for a, b in bounds)
    # (Elsewhere the first block's products start the sums, and a compiler drops the unused
    # zeros, which it would otherwise keep beside the first block's logits and the sums.)
    sums = _Sums(
        parts if needs[1] else None,
        widened(xp, xp.zeros_like(bias)) if needs[2] and bias is not None else None,
    )
    layer = _Layer(weight, bias, class_weight, needs[0], bounds)
    if looped:
        return _scanned(xp, scan, head, hidden, layer, target, g, sums)
    losses, hidden_grads = [], []
    for start, stop in block_bounds(n_tokens, head.rows):
        loss, d_hidden, sums = _block(
            xp, head, layer, hidden[start:stop, ...], target[start:stop, ...], g[start:stop], sums
        )
        losses.append(loss)
        hidden_grads.append(d_hidden)
    d_hidden = None
    if needs[0]:
        d_hidden = xp.concat(hidden_grads, axis=0) if losses else widened(xp, xp.zeros_like(hidden))
    loss = xp.concat(losses) if losses else widened(xp, xp.zeros_like(hidden[:, 0]))
    weight_sum = _joined(xp, sums.linear_weight, weight)
    return HeadGradients(loss, d_hidden, weight_sum, sums.linear_bias)


class _Layer(NamedTuple):
    """What every block reads beside its tokens: the weight, bias and class weights, whether
    to compute the hidden gradient, and the weight gradient's slices of classes."""

    weight: Array
    bias: Array | None
    class_weight: Array | None
    hidden_needed: bool
    slices: tuple[tuple[int, int], ...]


def _class_slices(weight: Array, rows: int, whole: bool) -> tuple[tuple[int, int], ...]:
    """The slices of classes in which the weight gradient is summed: one where it is summed
    `whole` (in place, or carried by a scan) or split over devices; elsewhere (compilers,
    immutable arrays) slices whose products are no larger than a quarter of a block's logits,
    so that a block's share adds one slice's temporary, not a second weight-sized array, and
    the last block's sums are written straight into the joined gradient."""
    n_classes, dim = weight.shape
    if whole or n_classes == 0 or shards_along_first_axis(weight) > 1:
        return ((0, n_classes),)
    size = max(1, (rows * n_classes) // (4 * max(dim, 1)))
    return tuple(block_bounds(n_classes, size))


def _joined(xp: Namespace, parts: tuple[Array | None, ...] | None, weight: Array) -> Array | None:
    if parts is None:
        return None
    if any(part is None for part in parts):  # (no tokens: no block added to them)
        return widened(xp, xp.zeros_like(weight))
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def _summed(xp: Namespace, total: Array | None, a: Array, b: Array) -> Array:
    """``total + a.T @ b``, or ``a.T @ b`` where total is None."""
    if total is None:
        return product(xp, xp.matrix_transpose(a), b)
    return add_product(xp, total, a, b)


def _block(
    xp: Namespace,
    head: Head,
    layer: _Layer,
    h: Array,
    target: Array,
    g: Array,
    sums: _Sums,
) -> tuple[Array, Array | None, _Sums]:
    """One block's loss per token and hidden gradient (None where not asked for), and the
    sums with its weight and bias gradients added. `layer` is the weight, the bias, the class
    weights and whether to compute the hidden gradient; h may have leading axes beside its
    tokens (a loop primitive's block of runs, one per device). With the vocabulary split over
    devices, the block's rows are gathered whole on every device first, so that its logits
    are split by the vocabulary alone."""
    weight, bias, class_weight, hidden_needed, slices = layer
    if shards_along_first_axis(weight) > 1:
        h, target, g = replicated(h), replicated(target), replicated(g)
    u, capped = scaled_logits(xp, head, h, weight, bias)
    t = block_target(xp, head, target, class_weight, weight.shape[0])
    dot = target_dot(xp, head, u, t, (h, weight, bias))
    lse, *parts = normaliser_parts(xp, u)
    loss = token_loss(xp, head, lse, t, dot)
    cotangent = logit_cotangent(xp, head, u, lse, t, capped, g[..., None], parts)
    lead = h.shape[:-1]
    if h.ndim > 2:  # (runs of several devices: their tokens as one axis)
        cotangent = xp.reshape(cotangent, (-1, cotangent.shape[-1]))
        h, g = xp.reshape(h, (-1, h.shape[-1])), xp.reshape(g, (-1,))
    weight_sum, bias_sum = sums
    if bias_sum is not None:
        bias_sum = bias_sum + xp.sum(cotangent, axis=0)
    filtered = filtered_products(xp, head, cotangent, g, weight, h, weight_sum, hidden_needed)
    if filtered is not None:
        d_hidden, weight_sum = filtered
    else:
        if cotangent.dtype != weight.dtype:  # (products in the layer's narrow dtype: cast once)
            cotangent = xp.astype(cotangent, weight.dtype)
        d_hidden = product(xp, cotangent, weight) if hidden_needed else None
        if weight_sum is not None:
            weight_sum = tuple(
                _summed(xp, part, cotangent[:, start:stop], h)
                for part, (start, stop) in zip(weight_sum, slices, strict=True)
            )
    if d_hidden is not None and len(lead) > 1:
        d_hidden = xp.reshape(d_hidden, (*lead, d_hidden.shape[-1]))
    return loss, d_hidden, _Sums(weight_sum, bias_sum)


def _scanned(
    xp: Namespace,
    scan: Any,
    head: Head,
    hidden: Array,
    layer: _Layer,
    target: Array,
    g: Array,
    sums: _Sums,
) -> HeadGradients:
    """`gradients_and_loss` through the library's scan primitive: the blocks stacked as
    `stacked_runs` stacks them, the weight and bias gradients carried."""
    n_tokens = hidden.shape[0]
    shards = shards_along_first_axis(hidden)
    per_shard = n_tokens // shards
    run = min(per_shard, -(-head.rows // shards))
    n_blocks = -(-per_shard // run)
    stacked = tuple(stacked_runs(xp, a, shards, n_blocks, run) for a in (hidden, target, g))

    def step(carried: _Sums, block: tuple[Array, Array, Array]) -> tuple[_Sums, tuple[Array, Any]]:
        h, t, g_block = block
        loss, d_hidden, carried = _block(xp, head, layer, h, t, g_block, _Sums(*carried))
        return carried, (loss, d_hidden)

    carried, (loss, d_hidden) = scan(step, sums, stacked)
    return HeadGradients(
        unstacked_runs(xp, loss, n_tokens, per_shard),
        None if d_hidden is None else unstacked_runs(xp, d_hidden, n_tokens, per_shard),
        _joined(xp, carried[0], layer.weight),
        carried[1],
    )


def stacked_runs(xp: Namespace, a: Array, shards: int, n_blocks: int, run: int) -> Array:
    """(N, ...) as (n_blocks, shards, run, ...): each shard's rows padded with zeros (class 0,
    a zero weight) to whole runs, its b-th run in block b, so that no block cuts across a
    device's piece and every device works on each block. With one shard, (n_blocks, run, ...):
    a block of plain rows, whose logits XLA computes as one product, where a leading axis of
    1 costs it a transposed copy of the logits per pass over them."""
    a = xp.reshape(a, (shards, a.shape[0] // shards, *a.shape[1:]))
    padding = n_blocks * run - a.shape[1]
    if padding:
        a = xp.concat([a, xp.zeros_like(a[:, :padding, ...])], axis=1)
    stacked = xp.moveaxis(xp.reshape(a, (shards, n_blocks, run, *a.shape[2:])), 1, 0)
    return stacked[:, 0, ...] if shards == 1 else stacked


def unstacked_runs(xp: Namespace, a: Array, n_tokens: int, per_shard: int) -> Array:
    """The inverse of `stacked_runs` for a per-token output (n_blocks, shards, run, ...), or
    (n_blocks, run, ...) for one shard: (N, ...), the padding dropped."""
    if n_tokens == per_shard:
        a = xp.expand_dims(a, axis=1)
    n_blocks, shards, run, *rest = a.shape
    a = xp.reshape(xp.moveaxis(a, 0, 1), (shards, n_blocks * run, *rest))
    return xp.reshape(a[:, :per_shard, ...], (n_tokens, *rest))
