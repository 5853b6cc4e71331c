"""linear_cross_entropy's derivatives from each token's lse, a block of classes at a time: the
backward pass (`gradients_from_normaliser`) and one block's part of the tangent
(`class_block_tangent`, whose transpose a library derives for its reverse mode).

With each token's lse known, a block of classes needs nothing from the others: its logits over
every token give its rows of the weight gradient in one product over all tokens, written once,
where a block of tokens adds a thin product into the whole weight gradient; only the hidden
gradient, the smaller, is summed over the blocks. A block of classes holds as many logits as a
block of tokens (`class_bounds`). The math is `blocks`' (`scaled_logits`, `logit_cotangent`,
`logit_tangent`); here is only the target's share of each block of classes.
"""

from __future__ import annotations

from typing import NamedTuple

from .._platform import Array, Namespace, can_update_in_place
from .arithmetic import add, product, widened
from .blocks import (
    BlockTarget,
    Head,
    HeadArrays,
    HeadRows,
    block_bounds,
    block_target,
    logit_cotangent,
    logit_tangent,
    scaled_logits,
)

__all__ = [
    "ClassBlock",
    "class_block_size",
    "class_block_tangent",
    "class_block_target",
    "class_bounds",
    "gradients_from_normaliser",
    "whole_target",
]


def class_block_size(n_tokens: int, n_classes: int, rows: int) -> int:
    """Classes per block: as many as make the logits of all `n_tokens` as many as `rows`
    tokens' over all classes."""
    return max(1, (rows * n_classes) // max(n_tokens, 1))


def class_bounds(n_tokens: int, n_classes: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each block of classes (`class_block_size`)."""
    return block_bounds(n_classes, class_block_size(n_tokens, n_classes, rows))


def whole_target(
    xp: Namespace, head: Head, target: Array, class_weight: Array | None, n_classes: int
) -> BlockTarget:
    """q' of all tokens, with no tokens x classes array: `block_target` for class indices; for
    probabilities only the mass, ``(1 - eps) <q, w> + eps mean(w)`` (w = 1 without class
    weights), whose columns `class_block_target` takes a block at a time."""
    if head.class_indices:
        return block_target(xp, head, target, class_weight, n_classes)
    eps = head.label_smoothing
    if class_weight is None:
        mass = xp.sum(target, axis=-1, keepdims=True)
        spread: Array | float = eps
    else:
        mass = xp.matmul(target, class_weight[:, None])
        spread = (eps / n_classes) * xp.sum(class_weight)
    mass = (1.0 - eps) * mass + spread if eps else mass
    return BlockTarget(mass, None, None, 0.0, 0.0)


class ClassBlock(NamedTuple):
    """One block of classes: its first class (an int, or a 0-d array inside a loop primitive),
    its number of classes, and its share of the class weights and, for probability targets,
    of the target's columns (None where there are none)."""

    start: Array | int
    size: int
    class_weight: Array | None
    columns: Array | None


def class_block_target(
    xp: Namespace,
    head: Head,
    whole: BlockTarget,
    block: ClassBlock,
    n_classes: int,
    dtype: object,
) -> BlockTarget:
    """q' of every token over the classes of `block`, with the mass of all `n_classes`
    classes, from `whole_target`; `dtype` is the logits'."""
    if block.columns is not None:
        t = block_target(xp, head, block.columns, block.class_weight, n_classes)
        return t._replace(mass=whole.mass)
    classes = whole.classes
    assert classes is not None  # (class indices: `block_target` keeps them)
    inside = (classes >= block.start) & (classes < block.start + block.size)
    spread = whole.spread
    if block.class_weight is not None and not isinstance(spread, float):  # (smoothing)
        spread = (head.label_smoothing / n_classes) * block.class_weight
    return BlockTarget(
        whole.mass,
        None,
        xp.where(inside, classes - block.start, 0),
        xp.astype(inside, dtype) * whole.at_index,
        spread,
    )


def class_block_tangent(
    xp: Namespace,
    head: Head,
    hidden: Array,
    lse: Array,
    whole: BlockTarget,
    n_classes: int,
    block: ClassBlock,
    rows: HeadRows,
) -> Array:
    """The part of the loss's tangent per token (N,) that the classes of `block` make, from
    the loss's `lse` (N, 1): ``sum_c g_c dz_c``, g the logits' cotangent. `rows` are the
    block's rows of the weights and bias, and of their tangents, with the hidden tangent."""
    u, capped = scaled_logits(xp, head, hidden, rows.linear_weight, rows.linear_bias)
    t = class_block_target(xp, head, whole, block, n_classes, u.dtype)
    cotangent = logit_cotangent(xp, head, u, lse, t, capped)
    z_dot = logit_tangent(xp, hidden, rows)
    return xp.sum(cotangent * z_dot, axis=-1)


def gradients_from_normaliser(
    xp: Namespace, head: Head, arrays: HeadArrays, g: Array, lse: Array
) -> tuple[Array, Array, Array | None]:
    """The gradients of ``sum(g * loss)`` in hidden, weight and bias, from the forward pass's
    `lse` (N,), a block of classes at a time (`class_bounds`): each block's rows of the weight
    gradient are one product over all tokens, written once, and the hidden gradient, the
    smaller, is summed over the blocks."""
    hidden, weight, bias, target, class_weight = arrays
    n_tokens, n_classes = hidden.shape[0], weight.shape[0]
    g, lse = g[:, None], lse[:, None]
    whole = whole_target(xp, head, target, class_weight, n_classes)
    hidden_grad = widened(xp, xp.zeros_like(hidden))
    weight_grad = widened(xp, xp.empty_like(weight))  # every row is written below
    in_place = can_update_in_place(weight_grad)
    weight_parts, bias_parts = [], []
    for bounds in class_bounds(n_tokens, n_classes, head.rows):
        rows = slice(*bounds)
        w = weight[rows, ...]
        u, capped = scaled_logits(xp, head, hidden, w, None if bias is None else bias[rows])
        block = ClassBlock(
            bounds[0],
            bounds[1] - bounds[0],
            None if class_weight is None else class_weight[rows],
            None if head.class_indices else target[:, rows],
        )
        t = class_block_target(xp, head, whole, block, n_classes, u.dtype)
        cotangent = logit_cotangent(xp, head, u, lse, t, capped, g)
        hidden_grad = add(xp, hidden_grad, product(xp, cotangent, w))
        rows_grad = product(xp, xp.matrix_transpose(cotangent), hidden)
        if in_place:
            weight_grad[rows, ...] = rows_grad
        else:
            weight_parts.append(rows_grad)
        if bias is not None:
            bias_parts.append(xp.sum(cotangent, axis=0))
    if not in_place:
        weight_grad = (
            xp.concat(weight_parts, axis=0) if weight_parts else widened(xp, xp.zeros_like(weight))
        )
    bias_grad = None
    if bias is not None:
        bias_grad = xp.concat(bias_parts) if bias_parts else widened(xp, xp.zeros_like(bias))
    return hidden_grad, weight_grad, bias_grad
