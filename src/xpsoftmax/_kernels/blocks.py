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

from .._platform import Array, Namespace, shards_along_first_axis
from .indexing import is_index

__all__ = [
    "BlockTarget",
    "Head",
    "HeadGradients",
    "block_bounds",
    "block_loss",
    "block_loss_tangent",
    "block_rows",
    "block_target",
    "gradients_and_loss",
    "logit_cotangent",
    "loss_and_normaliser",
    "normaliser_parts",
    "scaled_logits",
    "target_dot",
    "target_logit",
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


# The fewest tokens per block that the rule from the shapes picks: 256 tokens, or as many as
# make 2**21 logits (8 MB in float32) where the vocabulary is larger. Fewer tokens per block
# cost more in per-block overhead (a loop step, an operation's dispatch) than in arithmetic.
MIN_BLOCK_TOKENS = 256
MIN_BLOCK_LOGITS = 2**21


def block_rows(n_tokens: int, dim: int, n_classes: int, chunk_size: int | None) -> int:
    """Tokens per block: `chunk_size`, else as many as keep one block's logits no larger than
    the hidden states (rows x V <= N x D), but at least the smaller of `MIN_BLOCK_TOKENS` and
    `MIN_BLOCK_LOGITS` / V (at least one), and at most N."""
    if chunk_size is not None:
        return max(1, min(chunk_size, n_tokens))
    classes = max(n_classes, 1)
    floor = max(1, min(MIN_BLOCK_TOKENS, MIN_BLOCK_LOGITS // classes))
    return max(1, min(n_tokens, max(floor, (n_tokens * dim) // classes)))


def block_bounds(n_tokens: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each block; the last may be shorter."""
    return [(start, min(start + rows, n_tokens)) for start in range(0, n_tokens, rows)]


def scaled_logits(
    xp: Namespace, head: Head, h: Array, weight: Array, bias: Array | None
) -> tuple[Array, Array | None]:
    """(u, tanh(z / c)): the block's scaled logits, and the capped ones (None without a
    softcap), from which `logit_cotangent` takes the slope du/dz."""
    z = xp.matmul(h, xp.matrix_transpose(weight))
    if bias is not None:
        z = z + bias
    return _scaled(xp, head, z)


def _scaled(xp: Namespace, head: Head, z: Array) -> tuple[Array, Array | None]:
    t = head.temperature
    if head.softcap is None:
        return (z if t == 1.0 else z / t), None
    c = head.softcap
    capped = xp.tanh(z / c)
    return capped * (c / t), capped


def target_logit(
    xp: Namespace, head: Head, h: Array, weight: Array, bias: Array | None, index: Array
) -> Array:
    """u at each token's target class, (rows, 1), from the rows of the weights it picks: no
    pass over the block's logits."""
    flat = xp.reshape(index, (-1,))
    picked = xp.reshape(xp.take(weight, flat, axis=0), (*h.shape[:-1], weight.shape[-1]))
    z = xp.sum(h * picked, axis=-1, keepdims=True)
    if bias is not None:
        z = z + xp.reshape(xp.take(bias, flat, axis=0), z.shape)
    return _scaled(xp, head, z)[0]


def log_normaliser(xp: Namespace, u: Array) -> Array:
    """lse per token, shaped (rows, 1): ``m + log(sum(exp(u - m)))``, m the row's maximum."""
    return normaliser_parts(xp, u)[0]


def normaliser_parts(xp: Namespace, u: Array) -> tuple[Array, Array, Array]:
    """(lse, exp(u - m), sum(exp(u - m))), m the row's maximum: lse, and the pieces that give
    the softmax without another exponential.

    Not `normalise.log_total`: its near-one tail reads ``floor(exp(u - m))`` as exactly 1
    at the maximum, which fails where a compiler recomputes u (a softcap's tanh) in two
    fusions with different roundings, so that u - m at the maximum is not exactly 0.
    Logits of finite hidden states and weights are finite, so m needs no special values.
    """
    maximum = xp.max(u, axis=-1, keepdims=True)
    shifted = xp.exp(u - maximum)
    total = xp.sum(shifted, axis=-1, keepdims=True)
    return maximum + xp.log(total), shifted, total


class BlockTarget(NamedTuple):
    """q' of one block. Class indices keep it sparse, with no (rows, V) array: ``at_index``
    at the target class, plus ``spread`` (eps / V, times the class weights) on every class."""

    mass: Array | float  # S per token, (rows, 1)
    dense: Array | None  # q', (rows, V), for probability targets
    classes: Array | None  # the class indices, (rows, 1)
    at_index: Array | float  # q' - spread at the target class, (rows, 1)
    spread: Array | float  # 0.0 without smoothing


def block_target(
    xp: Namespace, head: Head, target: Array, class_weight: Array | None, n_classes: int
) -> BlockTarget:
    """q' for the block: the given probabilities (a block's worth), or the class indices."""
    eps = head.label_smoothing
    if not head.class_indices:
        q = (1.0 - eps) * target + eps / n_classes if eps else target
        q = q if class_weight is None else q * class_weight
        return BlockTarget(xp.sum(q, axis=-1, keepdims=True), q, None, 0.0, 0.0)
    index = xp.expand_dims(target, axis=-1)
    if class_weight is None:
        return BlockTarget(1.0, None, index, 1.0 - eps, eps / n_classes if eps else 0.0)
    picked = xp.take(class_weight, xp.reshape(target, (-1,)), axis=0)
    at_index = (1.0 - eps) * xp.reshape(picked, index.shape)
    if not eps:
        return BlockTarget(at_index, None, index, at_index, 0.0)
    spread = (eps / n_classes) * class_weight
    return BlockTarget(at_index + xp.sum(spread), None, index, at_index, spread)


def target_dot(
    xp: Namespace,
    head: Head,
    u: Array,
    t: BlockTarget,
    rows: tuple[Array, Array, Array | None],
) -> Array:
    """``<q', u>`` per token, shaped (rows, 1). For class indices the target's logit is read
    from u (``take_along_axis``), or, in namespaces without it, computed from the block's
    `rows` (h, weight, bias): a one-hot product only where the vocabulary is split over
    devices."""
    if t.dense is not None:
        return xp.sum(t.dense * u, axis=-1, keepdims=True)
    gather = getattr(xp, "take_along_axis", None)
    if shards_along_first_axis(rows[1]) > 1:
        # The vocabulary split over devices: a gather across the pieces has no layout of
        # its own, a one-hot product has u's.
        hits = xp.astype(is_index(xp, u, t.classes, u.ndim - 1), u.dtype)
        picked = xp.sum(u * hits, axis=-1, keepdims=True)
    elif gather is not None:
        picked = gather(u, t.classes, axis=-1)
    else:
        picked = target_logit(xp, head, *rows, t.classes)
    dot = t.at_index * picked
    if isinstance(t.spread, float):
        return dot + t.spread * xp.sum(u, axis=-1, keepdims=True) if t.spread else dot
    return dot + xp.sum(u * t.spread, axis=-1, keepdims=True)


def token_loss(xp: Namespace, head: Head, lse: Array, t: BlockTarget, dot: Array) -> Array:
    """The loss per token of the block, shaped (rows,)."""
    loss = t.mass * lse - dot
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
    t = block_target(xp, head, target, class_weight, weight.shape[0])
    dot = target_dot(xp, head, u, t, (h, weight, bias))
    return token_loss(xp, head, lse, t, dot), lse[..., 0]


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
    u, capped = scaled_logits(xp, head, h, weight, bias)
    parts = None
    if lse is None:
        lse, *parts = normaliser_parts(xp, u)
    else:
        lse = lse[..., None]
    t = block_target(xp, head, target, class_weight, weight.shape[0])
    z_dot = None
    for part in (
        None if h_dot is None else xp.matmul(h_dot, xp.matrix_transpose(weight)),
        None if weight_dot is None else xp.matmul(h, xp.matrix_transpose(weight_dot)),
        bias_dot,
    ):
        if part is not None:
            z_dot = part if z_dot is None else z_dot + part
    cotangent = logit_cotangent(xp, head, u, lse, t, capped, parts=parts)
    loss_dot = xp.sum(cotangent * z_dot, axis=-1)
    loss = token_loss(xp, head, lse, t, target_dot(xp, head, u, t, (h, weight, bias)))
    return loss, lse[..., 0], loss_dot


def logit_cotangent(
    xp: Namespace,
    head: Head,
    u: Array,
    lse: Array,
    t: BlockTarget,
    capped: Array | None,
    g: Array | None = None,
    parts: list[Array] | None = None,
) -> Array:
    """g times d loss / d z for each token of the block: ``g ((S + 2 z_loss lse) s - q') du/dz``
    (g per token, shaped (rows, 1); None is one), in as few passes over the block as the
    target allows. `parts`, ``[exp(u - m), its sum]`` from `normaliser_parts`, give the
    softmax s without another exponential; du/dz is ``(1 - tanh(z / c)**2) / T``."""
    factor = t.mass
    if head.z_loss:
        factor = factor + (2.0 * head.z_loss) * lse
    per_token = 1.0 / head.temperature if g is None else g / head.temperature
    if parts is None:
        cotangent = xp.exp(u - lse) * (factor * per_token)
    else:
        cotangent = parts[0] * (factor * per_token / parts[1])
    if t.dense is not None:
        cotangent = cotangent - t.dense * per_token
    else:
        if not isinstance(t.spread, float) or t.spread:
            cotangent = cotangent - t.spread * per_token
        hits = is_index(xp, u, t.classes, u.ndim - 1)
        # (The selection holds only the target's weights: its layout is the hits', as a
        # library with typed layouts wants, whatever the logits' layout.)
        cotangent = cotangent - xp.where(hits, t.at_index * per_token, 0.0)
    return cotangent if capped is None else cotangent * (1.0 - capped * capped)


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
        u, capped = scaled_logits(xp, head, h, weight, bias)
        parts = None
        if lse is None:
            block_lse, *parts = normaliser_parts(xp, u)
        else:
            block_lse = lse[start:stop, None]
        t = block_target(xp, head, target[start:stop, ...], class_weight, weight.shape[0])
        dot = target_dot(xp, head, u, t, (h, weight, bias))
        losses.append(token_loss(xp, head, block_lse, t, dot))
        cotangent = logit_cotangent(xp, head, u, block_lse, t, capped, g[start:stop, None], parts)
        hidden_grads.append(xp.matmul(cotangent, weight))
        weight_grad = weight_grad + xp.matmul(xp.matrix_transpose(cotangent), h)
        if bias_grad is not None:
            bias_grad = bias_grad + xp.sum(cotangent, axis=0)
    if not losses:
        return HeadGradients(
            xp.zeros_like(hidden[:, 0]), xp.zeros_like(hidden), weight_grad, bias_grad
        )
    return HeadGradients(xp.concat(losses), xp.concat(hidden_grads, axis=0), weight_grad, bias_grad)
