"""linear_cross_entropy reduced to a scalar, with its gradients taken in the forward pass
(the math is in `xpsoftmax._kernels.token_gradients`).

The rule's output is the weighted total ``sum(scale * loss)``, with one constant `scale` per
token (1 for "sum", one over the mean's denominator for "mean", 0 for an ignored token). Where
the caller knows that gradients will be taken, the forward pass computes them beside the loss,
a block of tokens at a time, three matrix products per block, and keeps them; the backward pass
only scales them by the incoming cotangent (and hands them on as they are when it is 1). The
per-token rule (`linear_cross_entropy`) keeps a logsumexp instead and recomputes the logits in
its backward pass: four products.

* ``autograd_function`` (PyTorch): the forward pass computes the gradients of the inputs that
  record gradients when the Function is applied (`ReducedHead.computes`), nothing more. A
  backward pass that is itself recorded (double backward), or asks for a gradient the forward
  pass did not compute, computes them again as functions of the inputs.
* ``custom_jvp`` (JAX): the primal is the loss alone, so plain evaluation pays nothing; the JVP
  computes the loss and the gradients of the inputs whose tangents are not zero, and returns
  the tangent ``sum(grad * tangent)``, linear in the tangents with the gradients as its
  residuals. Reverse mode transposes it into ``cotangent * grad``: ``grad`` and
  ``value_and_grad`` cost three products per block. Forward mode and higher orders
  differentiate the same JVP.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from .._kernels.blocks import Head
from .._kernels.token_gradients import gradients_and_loss
from .._platform import Array, Namespace, array_namespace, records_gradients, surely_true
from .linear_cross_entropy import LINEAR_CROSS_ENTROPY, HeadInputs, HeadNeeds, HeadTangents
from .rule import Rule

__all__ = ["NOTHING", "REDUCED_LINEAR_CROSS_ENTROPY", "ReducedHead", "ReducedInputs"]

#: No gradient computed in the forward pass.
NOTHING = HeadNeeds(False, False, False)


@dataclasses.dataclass(frozen=True, slots=True)
class ReducedHead:
    """The options of one call (`Head`), the gradients its forward pass computes, and the
    tokens per block of that pass; hashable, as JAX wants them."""

    head: Head
    computes: HeadNeeds = NOTHING
    gradient_rows: int = 1


class ReducedInputs(NamedTuple):
    """The per-token rule's inputs (`HeadInputs`), and the constant weight of each token's
    loss in the total, (N,)."""

    hidden: Array
    linear_weight: Array
    linear_bias: Array | None = None
    target: Array | None = None
    weight: Array | None = None
    scale: Array | None = None


class _ReducedLinearCrossEntropy(Rule):
    """The weighted total of the loss (a scalar); residuals: the gradients the forward pass
    computed, in `HeadTangents`' order, those not computed left out."""

    name = "linear_cross_entropy_reduced"
    reads_input = True
    inputs_record = ReducedInputs
    tangents_record = HeadTangents
    needs_record = HeadNeeds

    def forward(self, static: ReducedHead, inputs: ReducedInputs) -> tuple[Array, ...]:
        xp = array_namespace(inputs.hidden)
        per_token = HeadInputs(*inputs[:5])
        if not any(static.computes):
            loss = LINEAR_CROSS_ENTROPY.forward(static.head, per_token)[0]
            return (_total(xp, loss, inputs.scale),)
        grads = _gradients(xp, static, inputs, inputs.scale, static.computes)
        return (_total(xp, grads[0], inputs.scale), *(g for g in grads[1:] if g is not None))

    def jvp(
        self,
        static: ReducedHead,
        inputs: ReducedInputs,
        outputs: tuple[Array, ...],
        tangents: HeadTangents,
    ) -> Array:
        xp = array_namespace(inputs.hidden)
        wanted = HeadNeeds(*(d is not None for d in tangents))
        kept = _kept(static, inputs, outputs)
        if records_gradients(*tangents, *inputs) or _missing(kept, wanted):
            kept = HeadTangents(*_gradients(xp, static, inputs, inputs.scale, wanted)[1:])
        return _tangent(xp, kept, tangents, outputs[0])

    def vjp(
        self,
        static: ReducedHead,
        inputs: ReducedInputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: HeadNeeds,
    ) -> HeadTangents:
        xp = array_namespace(inputs.hidden)
        kept = _kept(static, inputs, outputs)
        if records_gradients(g, *inputs) or _missing(kept, needs):
            # Recorded (double backward), or not computed: the gradients as functions of
            # the inputs, with g folded into each token's weight.
            grads = _gradients(xp, static, inputs, g * inputs.scale, needs)
            return HeadTangents(
                *(d if need else None for d, need in zip(grads[1:], needs, strict=True))
            )
        # The usual cotangent, 1 (loss.backward()), hands the kept gradients on as they are:
        # no second gradient-sized array.
        unit = surely_true(g == 1.0)
        return HeadTangents(
            *(
                None if not need or d is None else (d if unit else d * g)
                for d, need in zip(kept, needs, strict=True)
            )
        )

    def forward_and_jvp(
        self, static: ReducedHead, inputs: ReducedInputs, tangents: HeadTangents
    ) -> tuple[Array, Array]:
        computes = HeadNeeds(*(d is not None for d in tangents))
        outputs = self.forward(dataclasses.replace(static, computes=computes), inputs)
        if not any(computes):
            return outputs[0], outputs[0] * 0.0
        xp = array_namespace(inputs.hidden)
        kept = _kept(dataclasses.replace(static, computes=computes), inputs, outputs)
        return outputs[0], _tangent(xp, kept, tangents, outputs[0])


def _gradients(
    xp: Namespace, static: ReducedHead, inputs: ReducedInputs, scale: Array, needs: HeadNeeds
) -> tuple[Array | None, ...]:
    """(loss per token, then the gradients of ``sum(scale * loss)`` that `needs` asks for)."""
    head = dataclasses.replace(static.head, rows=static.gradient_rows)
    return tuple(gradients_and_loss(xp, head, HeadInputs(*inputs[:5]), scale, needs))


def _total(xp: Namespace, loss: Array, scale: Array) -> Array:
    """``sum(scale * loss)``; an ignored token (weight 0) adds 0 whatever its loss."""
    return xp.sum(xp.where(scale == 0.0, 0.0, scale * loss))


def _kept(static: ReducedHead, inputs: ReducedInputs, outputs: tuple[Array, ...]) -> HeadTangents:
    """The gradients the forward pass kept among its outputs, in their places (None where it
    computed none: not asked for, or no bias)."""
    present = [
        computed and (field != "linear_bias" or inputs.linear_bias is not None)
        for field, computed in zip(HeadNeeds._fields, static.computes, strict=True)
    ]
    kept = iter(outputs[1:])
    return HeadTangents(*(next(kept) if here else None for here in present))


def _missing(kept: HeadTangents, wanted: HeadNeeds) -> bool:
    return any(want and d is None for d, want in zip(kept, wanted, strict=True))


def _tangent(xp: Namespace, grads: HeadTangents, tangents: HeadTangents, total: Array) -> Array:
    """``sum(grad * tangent)`` over the inputs with a tangent: the total's tangent."""
    parts = [
        xp.sum(grad * dot)
        for grad, dot in zip(grads, tangents, strict=True)
        if dot is not None and grad is not None
    ]
    return sum(parts[1:], parts[0]) if parts else total * 0.0


REDUCED_LINEAR_CROSS_ENTROPY = _ReducedLinearCrossEntropy()
