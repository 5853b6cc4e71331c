"""linear_cross_entropy's per-token loss and its closed-form derivatives, a block at a time
(the math is in `xpsoftmax._kernels.blocks` and `class_blocks`).

The forward pass keeps one logsumexp per token beside the inputs (hidden, weights, bias);
the backward pass recomputes the logits from them, a block of classes at a time. A backward
pass that is itself recorded (double backward) recomputes the logsumexp too, a block of tokens
at a time, so that its own derivative is right. Under ``custom_jvp`` (JAX) the rule's JVP
computes the loss and its logsumexp a block of tokens at a time, then the tangent from them a
block of classes at a time, each block wrapped in the library's rematerialiser: the linear
part then keeps each block's inputs, not its probabilities, for the transpose, which writes
each block's rows of the weight gradient once. With the weight split over devices by the
vocabulary, loss and tangent come together, a block of tokens at a time, each gathered whole
on every device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from .._kernels.arithmetic import widened
from .._kernels.blocks import (
    Head,
    HeadArrays,
    HeadRows,
    block_bounds,
    block_loss,
    block_loss_tangent,
    loss_and_normaliser,
)
from .._kernels.class_blocks import (
    ClassBlock,
    class_block_size,
    class_block_tangent,
    gradients_from_normaliser,
    whole_target,
)
from .._kernels.token_gradients import gradients_and_loss, stacked_runs, unstacked_runs
from .._platform import (
    Array,
    array_device,
    array_namespace,
    block_map,
    records_gradients,
    rematerialiser,
    replicated,
    require_extra,
    shards_along_first_axis,
)
from .rule import Rule

__all__ = ["LINEAR_CROSS_ENTROPY", "HeadInputs", "HeadNeeds", "HeadTangents"]

#: What an older JAX cannot differentiate (the per-token rule's loop over classes); the
#: reduced loss takes another rule, which it can.
WHAT_NEEDS_MAPS = "the derivatives of linear_cross_entropy's loss per token (reduction='none')"


#: The rule's array inputs: the target and the class weights are constants.
HeadInputs = HeadArrays


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
        if block_map(inputs.hidden) is None:
            return loss_and_normaliser(xp, static, inputs)

        def block(b: _BlockArrays) -> tuple[Array, Array]:
            return block_loss(
                xp, static, b.hidden, b.linear_weight, b.linear_bias, b.target, b.weight
            )

        return _blockwise(xp, static, inputs, HeadTangents(), block)

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
        if records_gradients(g, *inputs):
            # Recorded (double backward): the normaliser is recomputed as a function of the
            # inputs, not read as a constant.
            _, *grads = gradients_and_loss(xp, static, inputs, g, needs)
        else:
            grads = list(gradients_from_normaliser(xp, static, inputs, g, outputs[1]))
        return HeadTangents(
            *(grad if need else None for grad, need in zip(grads, needs, strict=True))
        )

    def forward_and_jvp(
        self, static: Head, inputs: HeadInputs, tangents: HeadTangents
    ) -> tuple[Array, Array]:
        xp = array_namespace(inputs.hidden)
        if all(d is None for d in tangents):
            loss = self.forward(static, inputs)[0]
            return loss, loss * 0.0
        if block_map(inputs.hidden) is not None:
            # Its reverse mode transposes a loop over tangents and residuals together: an
            # older library fails inside that transpose, with no word of why.
            require_extra("transposed-maps", WHAT_NEEDS_MAPS, xp.__name__)
        if (
            block_map(inputs.hidden) is not None
            and shards_along_first_axis(inputs.linear_weight) == 1
        ):
            loss, lse = self.forward(static, inputs)
            return loss, _tangent_by_classes(xp, static, inputs, tangents, lse)
        remat = rematerialiser(inputs.hidden)

        def block(b: _BlockArrays) -> tuple[Array, Array]:
            def outputs(b: _BlockArrays) -> tuple[Array, Array]:
                loss, _, loss_dot = _block(xp, static, b, None)
                return loss, loss_dot

            # Rematerialised, the transpose keeps the block's inputs, not its probabilities.
            return (outputs if remat is None else remat(outputs))(b)

        loss, loss_dot = _blockwise(xp, static, inputs, tangents, block)
        return loss, loss_dot


def _blockwise(
    xp: Any,
    static: Head,
    inputs: HeadInputs,
    tangents: HeadTangents,
    block: Callable[[_BlockArrays], tuple[Array, ...]],
) -> tuple[Array, ...]:
    """`block`'s per-token outputs over all tokens: by the library's loop primitive where it
    has one, else a Python loop.

    The loop primitive runs over stacked blocks: with the tokens split over S devices, block
    b holds the b-th run of rows / S tokens of every device's piece (each piece padded with
    zeros to whole runs, the padding's outputs dropped), so that no block cuts across a
    piece's border and every device works on each block.
    """
    n, rows = inputs.hidden.shape[0], static.rows
    loop = block_map(inputs.hidden)
    if shards_along_first_axis(inputs.linear_weight) > 1:
        block = _gathering_rows(block)
    if loop is None or n <= rows:
        parts = [block(_rows(inputs, tangents, *bounds)) for bounds in block_bounds(n, rows)]
        if not parts:
            return (widened(xp, xp.zeros_like(inputs.hidden[:, 0])),) * 2
        return tuple(xp.concat(outputs) for outputs in zip(*parts, strict=True))
    shards = shards_along_first_axis(inputs.hidden)
    per_shard = n // shards
    run = min(per_shard, -(-rows // shards))
    n_blocks = -(-per_shard // run)
    stacked = tuple(
        None if a is None else stacked_runs(xp, a, shards, n_blocks, run)
        for a in (inputs.hidden, inputs.target, tangents.hidden)
    )
    whole = _rows(inputs, tangents, 0, n)

    def one_block(per_block: tuple[Array | None, ...]) -> tuple[Array, ...]:
        return block(
            whole._replace(hidden=per_block[0], target=per_block[1], hidden_dot=per_block[2])
        )

    outputs = loop(one_block, stacked)  # each (n_blocks, shards, run)
    return tuple(unstacked_runs(xp, out, n, per_shard) for out in outputs)


def _tangent_by_classes(
    xp: Any, static: Head, inputs: HeadInputs, tangents: HeadTangents, lse: Array
) -> Array:
    """The loss's tangent from its `lse`, a block of classes at a time in the library's loop
    primitive, each block rematerialised: the transpose of the loop then writes each block's
    rows of the weight gradient once, where a block of tokens would add a thin product into
    all of it. The classes past the last whole block make one more block, outside the loop."""
    hidden, n_classes = inputs.hidden, inputs.linear_weight.shape[0]
    size = class_block_size(hidden.shape[0], n_classes, static.rows)
    looped = (n_classes // size) * size
    whole = whole_target(xp, static, inputs.target, inputs.weight, n_classes)
    per_class = (
        inputs.linear_weight,
        inputs.linear_bias,
        tangents.linear_weight,
        tangents.linear_bias,
        inputs.weight,
        None if static.class_indices else xp.matrix_transpose(inputs.target),
    )

    def part(start: Array | int, rows: tuple[Any, ...]) -> Array:
        weight, bias, weight_dot, bias_dot, class_weight, columns = rows
        block = ClassBlock(
            start,
            weight.shape[0],
            class_weight,
            None if columns is None else xp.matrix_transpose(columns),
        )
        layer = HeadRows(weight, bias, tangents.hidden, weight_dot, bias_dot)
        return class_block_tangent(xp, static, hidden, lse[:, None], whole, n_classes, block, layer)

    def looped_part(stacked: tuple[Any, ...]) -> Array:
        return part(stacked[0], stacked[1:])

    remat, loop = rematerialiser(hidden), block_map(hidden)
    assert loop is not None  # (the caller checks)
    stacked = tuple(
        None if a is None else xp.reshape(a[:looped, ...], (-1, size, *a.shape[1:]))
        for a in per_class
    )
    starts = xp.arange(0, looped, size, device=array_device(hidden))
    tangent = xp.sum(
        loop(looped_part if remat is None else remat(looped_part), (starts, *stacked)), axis=0
    )
    if looped < n_classes:
        rest = tuple(None if a is None else a[looped:, ...] for a in per_class)
        tangent = tangent + part(looped, rest)
    return tangent


def _gathering_rows(
    block: Callable[[_BlockArrays], tuple[Array, ...]],
) -> Callable[[_BlockArrays], tuple[Array, ...]]:
    """`block` on its token rows gathered whole on every device: with the vocabulary split
    over the devices, a block's logits are split by the vocabulary alone."""

    def gathered(b: _BlockArrays) -> tuple[Array, ...]:
        h_dot = b.hidden_dot
        return block(
            b._replace(
                hidden=replicated(b.hidden),
                target=replicated(b.target),
                hidden_dot=None if h_dot is None else replicated(h_dot),
            )
        )

    return gathered


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
        inputs.target[start:stop, ...],
        None if h_dot is None else h_dot[start:stop, ...],
        inputs.linear_weight,
        inputs.linear_bias,
        inputs.weight,
        tangents.linear_weight,
        tangents.linear_bias,
    )


def _block(xp: Any, static: Head, b: _BlockArrays, lse: Array | None) -> tuple[Array, Array, Array]:
    rows = HeadRows(
        b.linear_weight, b.linear_bias, b.hidden_dot, b.linear_weight_dot, b.linear_bias_dot
    )
    return block_loss_tangent(xp, static, b.hidden, b.target, b.weight, lse, rows)


LINEAR_CROSS_ENTROPY = _LinearCrossEntropy()
