"""linear_cross_entropy's per-token loss and its closed-form derivatives, a block at a time
(the math is in `xpsoftmax._kernels.blocks`).

The forward pass keeps one logsumexp per token beside the inputs (hidden, weights, bias);
the backward pass recomputes each block's logits from them. A backward pass that is itself
recorded (double backward) recomputes the logsumexp too, so that its own derivative is
right. Under ``custom_jvp`` (JAX) the rule's JVP computes the loss and its tangent block by
block, each block wrapped in the library's rematerialiser where it has one: the linear part
then keeps each block's inputs, not its probabilities, for the transpose.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._kernels.blocks import (
    Head,
    block_bounds,
    block_loss_tangent,
    gradients_and_loss,
    loss_and_normaliser,
)
from .._platform import Array, array_namespace, records_gradients, rematerialiser
from .rule import Rule

__all__ = ["LINEAR_CROSS_ENTROPY", "HeadInputs", "HeadNeeds", "HeadTangents"]


class HeadInputs(NamedTuple):
    """The rule's array inputs: hidden (N, D), the linear layer, the target ((N,) class
    indices or (N, V) probabilities) and the class weights; the last two are constants."""

    hidden: Array
    linear_weight: Array
    linear_bias: Array | None = None
    target: Array | None = None
    weight: Array | None = None


class HeadTangents(NamedTuple):
    """Tangents (or cotangents) of the differentiable inputs; None is a zero."""

    hidden: Array | None = None
    linear_weight: Array | None = None
    linear_bias: Array | None = None


class HeadNeeds(NamedTuple):
    """Which inputs' cotangents a backward pass asks for."""

    hidden: bool = True
    linear_weight: bool = True
    linear_bias: bool = False


class _LinearCrossEntropy(Rule):
    """Loss per token (N,); residual: the logsumexp per token (N,)."""

    name = "linear_cross_entropy"
    reads_input = True
    inputs_record = HeadInputs
    tangents_record = HeadTangents
    needs_record = HeadNeeds

    def forward(self, static: Head, inputs: HeadInputs) -> tuple[Array, ...]:
        xp = array_namespace(inputs.hidden)
        return loss_and_normaliser(xp, static, *inputs)

    def jvp(
        self,
        static: Head,
        inputs: HeadInputs,
        outputs: tuple[Array, ...],
        tangents: HeadTangents,
    ) -> Array:
        xp = array_namespace(inputs.hidden)
        # A recorded JVP reads the normaliser as a function of the inputs, not a constant.
        lse = None if records_gradients(*tangents, *inputs) else outputs[1]
        parts = []
        for start, stop in block_bounds(inputs.hidden.shape[0], static.rows):
            rows = _rows(inputs, tangents, start, stop)
            block_lse = None if lse is None else lse[start:stop]
            parts.append(_block(xp, static, rows, block_lse)[2])
        return xp.concat(parts) if parts else outputs[0] * 0.0

    def vjp(
        self,
        static: Head,
        inputs: HeadInputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: HeadNeeds,
    ) -> HeadTangents:
        xp = array_namespace(inputs.hidden)
        lse = None if records_gradients(g, *inputs) else outputs[1]
        grads = gradients_and_loss(xp, static, *inputs, g, lse)
        return HeadTangents(
            grads.hidden if needs.hidden else None,
            grads.linear_weight if needs.linear_weight else None,
            grads.linear_bias if needs.linear_bias else None,
        )

    def forward_and_jvp(
        self, static: Head, inputs: HeadInputs, tangents: HeadTangents
    ) -> tuple[Array, Array]:
        xp = array_namespace(inputs.hidden)
        if all(d is None for d in tangents):
            loss = self.forward(static, inputs)[0]
            return loss, loss * 0.0
        remat = rematerialiser(inputs.hidden)
        losses, dots = [], []
        for start, stop in block_bounds(inputs.hidden.shape[0], static.rows):
            rows = _rows(inputs, tangents, start, stop)

            def block(*arrays: Array | None) -> tuple[Array, Array, Array]:
                return _block(xp, static, _BlockArrays(*arrays), None)

            loss, _, loss_dot = (block if remat is None else remat(block))(*rows)
            losses.append(loss)
            dots.append(loss_dot)
        if not losses:
            empty = xp.zeros_like(inputs.hidden[:, 0])
            return empty, empty
        return xp.concat(losses), xp.concat(dots)


class _BlockArrays(NamedTuple):
    """One block's arrays: its rows of the hidden states, target and hidden tangent, and the
    whole layer with its tangents."""

    hidden: Array
    target: Array
    hidden_dot: Array | None
    linear_weight: Array
    linear_bias: Array | None
    weight: Array | None
    linear_weight_dot: Array | None
    linear_bias_dot: Array | None


def _rows(inputs: HeadInputs, tangents: HeadTangents, start: int, stop: int) -> _BlockArrays:
    h_dot = tangents.hidden
    return _BlockArrays(
        inputs.hidden[start:stop, ...],
        inputs.target[start:stop, ...],  # type: ignore[index]
        None if h_dot is None else h_dot[start:stop, ...],
        inputs.linear_weight,
        inputs.linear_bias,
        inputs.weight,
        tangents.linear_weight,
        tangents.linear_bias,
    )


def _block(xp: Any, static: Head, b: _BlockArrays, lse: Array | None) -> tuple[Array, Array, Array]:
    return block_loss_tangent(
        xp,
        static,
        b.hidden,
        b.linear_weight,
        b.linear_bias,
        b.target,
        b.weight,
        lse,
        b.hidden_dot,
        b.linear_weight_dot,
        b.linear_bias_dot,
    )


LINEAR_CROSS_ENTROPY = _LinearCrossEntropy()
