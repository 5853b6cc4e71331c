"""linear_cross_entropy's math, one block of tokens at a time: no tokens x vocabulary array.

A block of rows ``h`` of the hidden states gives its logits ``z = h @ W.T + b``, capped to
``c tanh(z / c)`` with a softcap c, and scaled, ``u = z / T``. Per token, with
``lse = log sum_j exp(u_j)`` and the weighted, smoothed target ``q'`` (class weights w,
smoothing eps over V classes: ``q'_c = w_c ((1 - eps) q_c + eps / V)``, q the one-hot of a
class index or the given probabilities) of mass ``S = sum_c q'_c``, the loss is

    S lse - <q', u> + z_loss lse**2,

and its gradient in u is ``(S + 2 z_loss lse) softmax(u) - q'``. The chain to z multiplies by
``(1 - tanh(z / c)**2) / T``; to the inputs, ``dh = G @ W``, ``dW = G.T @ h``, ``db = sum G``.
Only one block's logits exist at a time; the weight and bias gradients are summed over the
blocks in the compute dtype (float32 for float16 and bfloat16 input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .._platform import Array, Namespace
from .indexing import is_index

__all__ = [
    "Head",
    "HeadGradients",
    "block_bounds",
    "block_loss",
    "block_loss_tangent",
    "block_rows",
    "gradients_and_loss",
    "logit_cotangent",
    "loss_and_normaliser",
    "scaled_logits",
    "token_loss",
]


@dataclass(frozen=True, slots=True)
class Head:
    """The options of one linear_cross_entropy call, checked; hashable, as JAX wants them."""

    temperature: float
    softcap: float | None
    z_loss: float
    label_smoothing: float
    class_indices: bool
    rows: int  # tokens per block


class HeadGradients(NamedTuple):
    """The loss per token and the gradients of its weighted sum."""

    loss: Array
    hidden: Array
    linear_weight: Array
    linear_bias: Array | None


def block_rows(n_tokens: int, dim: int, n_classes: int, chunk_size: int | None) -> int:
    """Tokens per block: `chunk_size`, else as many as keep one block's logits no larger than
    the hidden states (rows x V <= N x D), at least one."""
    if chunk_size is not None:
        return max(1, min(chunk_size, n_tokens))
    return max(1, min(n_tokens, (n_tokens * dim) // max(n_classes, 1)))


def block_bounds(n_tokens: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each block; the last may be shorter."""
    return [(start, min(start + rows, n_tokens)) for start in range(0, n_tokens, rows)]


def scaled_logits(
    xp: Namespace, head: Head, h: Array, weight: Array, bias: Array | None
) -> tuple[Array, Array | float]:
    """(u, du/dz): the block's scaled logits and their slope in the plain logits z."""
    z = xp.matmul(h, xp.matrix_transpose(weight))
    if bias is not None:
        z = z + bias
    t = head.temperature
    if head.softcap is None:
        return (z if t == 1.0 else z / t), 1.0 / t
    c = head.softcap
    capped = xp.tanh(z / c)
    return capped * (c / t), (1.0 - capped * capped) / t


def log_normaliser(xp: Namespace, u: Array) -> Array:
    """lse per token, shaped (rows, 1): ``m + log(sum(exp(u - m)))``, m the row's maximum.

    Not `normalise.log_total`: its near-one tail reads ``floor(exp(u - m))`` as exactly 1
    at the maximum, which fails where a compiler recomputes u (a softcap's tanh) in two
    fusions with different roundings, so that u - m at the maximum is not exactly 0.
    Logits of finite hidden states and weights are finite, so m needs no special values.
    """
    maximum = xp.max(u, axis=-1, keepdims=True)
    return maximum + xp.log(xp.sum(xp.exp(u - maximum), axis=-1, keepdims=True))


def target_weights(
    xp: Namespace, head: Head, u: Array, target: Array, class_weight: Array | None
) -> Array:
    """q' for the block, shaped like u (a block's worth, never the whole batch)."""
    eps, n_classes = head.label_smoothing, u.shape[-1]
    if head.class_indices:
        hit = is_index(xp, u, xp.expand_dims(target, axis=-1), u.ndim - 1)
        q = xp.astype(hit, u.dtype)
        if eps:
            q = (1.0 - eps) * q + eps / n_classes
    else:
        q = (1.0 - eps) * target + eps / n_classes if eps else target
    return q if class_weight is None else q * class_weight


def token_loss(xp: Namespace, head: Head, u: Array, lse: Array, q: Array) -> Array:
    """The loss per token of the block, shaped (rows,)."""
    mass = xp.sum(q, axis=-1, keepdims=True)
    loss = mass * lse - xp.sum(q * u, axis=-1, keepdims=True)
    if head.z_loss:
        loss = loss + head.z_loss * (lse * lse)
    return loss[..., 0]


def block_loss(
    xp: Namespace,
    head: Head,
    h: Array,
    weight: Array,
    bias: Array | None,
    target: Array,
    class_weight: Array | None,
) -> tuple[Array, Array]:
    """(loss, lse) per token of one block."""
    u, _ = scaled_logits(xp, head, h, weight, bias)
    lse = log_normaliser(xp, u)
    q = target_weights(xp, head, u, target, class_weight)
    return token_loss(xp, head, u, lse, q), lse[..., 0]


def loss_and_normaliser(
    xp: Namespace,
    head: Head,
    hidden: Array,
    weight: Array,
    bias: Array | None,
    target: Array,
    class_weight: Array | None,
) -> tuple[Array, Array]:
    """(loss, lse) per token of (N, D) hidden states, a block at a time."""
    losses, normalisers = [], []
    for start, stop in block_bounds(hidden.shape[0], head.rows):
        loss, lse = block_loss(
            xp, head, hidden[start:stop, ...], weight, bias, target[start:stop, ...], class_weight
        )
        losses.append(loss)
        normalisers.append(lse)
    if not losses:
        empty = xp.zeros_like(hidden[:, 0])
        return empty, empty
    return xp.concat(losses), xp.concat(normalisers)


def block_loss_tangent(
    xp: Namespace,
    head: Head,
    h: Array,
    weight: Array,
    bias: Array | None,
    target: Array,
    class_weight: Array | None,
    lse: Array | None,
    h_dot: Array | None,
    weight_dot: Array | None,
    bias_dot: Array | None,
) -> tuple[Array, Array, Array]:
    """(loss, lse, the loss's tangent) per token of one block; lse is recomputed when None.

    The tangent of the logits is ``dh @ W.T + h @ dW.T + db`` (None tangents are zeros)."""
    u, slope = scaled_logits(xp, head, h, weight, bias)
    lse = log_normaliser(xp, u) if lse is None else lse[..., None]
    q = target_weights(xp, head, u, target, class_weight)
    z_dot = None
    for part in (
        None if h_dot is None else xp.matmul(h_dot, xp.matrix_transpose(weight)),
        None if weight_dot is None else xp.matmul(h, xp.matrix_transpose(weight_dot)),
        bias_dot,
    ):
        if part is not None:
            z_dot = part if z_dot is None else z_dot + part
    cotangent = logit_cotangent(xp, head, u, lse, q, slope)
    loss_dot = xp.sum(cotangent * z_dot, axis=-1)
    return token_loss(xp, head, u, lse, q), lse[..., 0], loss_dot


def logit_cotangent(
    xp: Namespace, head: Head, u: Array, lse: Array, q: Array, slope: Array | float
) -> Array:
    """d loss / d z for each token of the block: ``((S + 2 z_loss lse) s - q') du/dz``."""
    factor = xp.sum(q, axis=-1, keepdims=True)
    if head.z_loss:
        factor = factor + (2.0 * head.z_loss) * lse
    return (factor * xp.exp(u - lse) - q) * slope


def gradients_and_loss(
    xp: Namespace,
    head: Head,
    hidden: Array,
    weight: Array,
    bias: Array | None,
    target: Array,
    class_weight: Array | None,
    g: Array,
    lse: Array | None = None,
) -> HeadGradients:
    """The loss per token and the gradients of ``sum(g * loss)``, a block at a time.

    `hidden` is (N, D), `g` (N,). With `lse` (N,), saved by a forward pass, each block's
    normaliser is read rather than recomputed.
    """
    losses, hidden_grads = [], []
    weight_grad = xp.zeros_like(weight)
    bias_grad = None if bias is None else xp.zeros_like(bias)
    for start, stop in block_bounds(hidden.shape[0], head.rows):
        h = hidden[start:stop, ...]
        u, slope = scaled_logits(xp, head, h, weight, bias)
        block_lse = log_normaliser(xp, u) if lse is None else lse[start:stop, None]
        q = target_weights(xp, head, u, target[start:stop, ...], class_weight)
        losses.append(token_loss(xp, head, u, block_lse, q))
        cotangent = logit_cotangent(xp, head, u, block_lse, q, slope) * g[start:stop, None]
        hidden_grads.append(xp.matmul(cotangent, weight))
        weight_grad = weight_grad + xp.matmul(xp.matrix_transpose(cotangent), h)
        if bias_grad is not None:
            bias_grad = bias_grad + xp.sum(cotangent, axis=0)
    if not losses:
        return HeadGradients(
            xp.zeros_like(hidden[:, 0]), xp.zeros_like(hidden), weight_grad, bias_grad
        )
    return HeadGradients(xp.concat(losses), xp.concat(hidden_grads, axis=0), weight_grad, bias_grad)
