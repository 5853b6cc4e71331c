"""The paths of linear_cross_entropy (spec: Linear cross-entropy, Derivatives): which rule
differentiates a call, and the tokens left out before any product.

* The loss reduced to a scalar ("mean", "sum") goes through the rule that computes the
  gradients in the forward pass, where they will be taken (`total`); per token ("none"), or
  under forward mode, through the rule that keeps a logsumexp (`per_token_loss`).
* Tokens that add nothing (an ``ignore_index`` target; a class weight of 0, where neither
  smoothing nor the z-loss gives them a loss) are left out of eager calls (`kept_tokens`):
  no product ever sees them. Traced and lazy arrays keep them, masked, so that their shapes
  stay what the caller's compiler saw.
"""

from __future__ import annotations

import dataclasses

from ._derivatives.attach import call
from ._derivatives.linear_cross_entropy import LINEAR_CROSS_ENTROPY, HeadInputs, HeadNeeds
from ._derivatives.reduced_linear_cross_entropy import (
    NOTHING,
    REDUCED_LINEAR_CROSS_ENTROPY,
    ReducedHead,
    ReducedInputs,
)
from ._kernels.arithmetic import widened
from ._kernels.blocks import Head, block_rows
from ._loss import mean_denominator
from ._platform import (
    Array,
    array_device,
    block_map,
    derivative_mechanism,
    has_forward_tangent,
    records_gradients,
    surely_true,
    values_are_known,
)
from ._validation.linear import PreparedHead

__all__ = [
    "denominator",
    "forward_mode",
    "head_of",
    "inputs_of",
    "kept_tokens",
    "per_token_loss",
    "reduced",
    "restored",
    "total",
]


def per_token_loss(p: PreparedHead) -> Array:
    """The loss per token, differentiable through the rule that keeps a logsumexp."""
    head, inputs = head_of(p), inputs_of(p)

    def plain() -> Array:
        return LINEAR_CROSS_ENTROPY.forward(head, inputs)[0]

    return call(LINEAR_CROSS_ENTROPY, head, inputs, plain)


def total(p: PreparedHead, reduction: str) -> Array:
    """The loss reduced to a scalar, differentiable through the rule that computes the
    gradients in the forward pass, where a recording autodiff watches the inputs (PyTorch's:
    the gradients of those that require them) or a JVP rule is attached (JAX's)."""
    xp = p.xp
    n_tokens, dim = p.hidden.shape
    looped = block_map(p.hidden) is not None
    n_classes = p.linear_weight.shape[0]
    # (The rule's own Head serves its forward pass alone: plain evaluation's blocks.)
    plain_rows = block_rows(n_tokens, dim, n_classes, p.chunk_size, looped, "plain")
    head = dataclasses.replace(head_of(p), rows=plain_rows)
    scale = widened(xp, xp.ones_like(p.hidden[:, 0]))
    if reduction == "mean":
        scale = scale / denominator(p, scale)
    if p.ignored is not None:
        scale = xp.where(p.ignored, 0.0, scale)
    inputs = ReducedInputs(*inputs_of(p), scale)
    mechanism = derivative_mechanism(p.hidden)
    computes = NOTHING
    if mechanism is not None and mechanism[0] != "custom_jvp":
        computes = HeadNeeds(*map(records_gradients, _layer(p)))
    rows = block_rows(n_tokens, dim, n_classes, p.chunk_size, looped, "gradients")
    static = ReducedHead(head, computes, rows)

    def plain() -> Array:
        return REDUCED_LINEAR_CROSS_ENTROPY.forward(ReducedHead(head), inputs)[0]

    return call(REDUCED_LINEAR_CROSS_ENTROPY, static, inputs, plain)


def forward_mode(p: PreparedHead) -> bool:
    """Whether a recording autodiff carries a forward-mode tangent on hidden or the layer:
    the per-token rule's tangent serves it, and the gradients would be work thrown away."""
    return any(a is not None and has_forward_tangent(a) for a in _layer(p))


def _layer(p: PreparedHead) -> tuple[Array | None, ...]:
    return p.hidden, p.linear_weight, p.linear_bias


def kept_tokens(p: PreparedHead) -> tuple[PreparedHead, Array | None]:
    """`p` without the tokens that add nothing to the loss or its gradients, and each token's
    place among those kept (their number for a token left out: `restored` puts a zero
    there); ``(p, None)`` where none is left out, or where the targets' values cannot be read
    now (traced or lazy arrays: their tokens stay, masked)."""
    xp = p.xp
    if not p.class_indices or not values_are_known(p.target):
        return p, None
    dropped = p.ignored
    if p.weight is not None and not (p.z_loss or p.label_smoothing):
        # A class weight of 0 zeroes the token's whole loss, unless smoothing spreads the
        # other classes' weights over it or the z-loss adds its own term.
        weightless = xp.take(p.weight, p.target, axis=0) == 0.0
        dropped = weightless if dropped is None else dropped | weightless
    if dropped is None or not surely_true(xp.any(dropped)):
        return p, None
    keep = ~dropped
    (rows,) = xp.nonzero(keep)
    counted = xp.cumulative_sum(xp.astype(keep, rows.dtype))
    places = xp.where(keep, counted - 1, rows.shape[0])
    kept = dataclasses.replace(
        p,
        hidden=xp.take(p.hidden, rows, axis=0),
        target=xp.take(p.target, rows, axis=0),
        ignored=None,
        batch=(rows.shape[0],),
    )
    return kept, places


def restored(xp: object, values: Array, places: Array | None) -> Array:
    """Per-token `values` of the kept tokens back in every token's place, 0 for those left
    out (see `kept_tokens`); `values` itself where nothing was left out."""
    if places is None:
        return values
    zero = xp.zeros(  # type: ignore[attr-defined]
        (1, *values.shape[1:]), dtype=values.dtype, device=array_device(values)
    )
    return xp.take(xp.concat([values, zero]), places, axis=0)  # type: ignore[attr-defined]


def head_of(p: PreparedHead) -> Head:
    n_tokens, dim = p.hidden.shape
    looped = block_map(p.hidden) is not None
    rows = block_rows(n_tokens, dim, p.linear_weight.shape[0], p.chunk_size, looped)
    return Head(
        p.temperature, p.softcap, p.z_loss, p.label_smoothing, p.class_indices, rows, p.filter_eps
    )


def inputs_of(p: PreparedHead) -> HeadInputs:
    return HeadInputs(p.hidden, p.linear_weight, p.linear_bias, p.target, p.weight)


def reduced(p: PreparedHead, loss: Array, reduction: str, batch: tuple[int, ...]) -> Array:
    """The per-token loss with ignored tokens zeroed, reshaped to `batch` or reduced."""
    xp = p.xp
    if p.ignored is not None:
        loss = xp.where(p.ignored, 0.0, loss)
    if reduction == "none":
        return xp.reshape(loss, batch)
    total = xp.sum(loss)
    return total / denominator(p, loss) if reduction == "mean" else total


def denominator(p: PreparedHead, loss: Array) -> Array | int:
    return mean_denominator(p.xp, loss, p.target, p.weight, p.ignored, p.class_indices)
