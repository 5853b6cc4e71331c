"""linear_cross_entropy's math, one block of tokens at a time: no tokens x vocabulary array.

A block of rows ``h`` of the hidden states gives its logits ``z = h @ W.T + b``, capped to
``c tanh(z / c)`` with a softcap c, and scaled, ``u = z / T``. Per token, with
``lse = log sum_j exp(u_j)`` and the weighted, smoothed target ``q'`` (class weights w,
smoothing eps over V classes: ``q'_c = w_c ((1 - eps) q_c + eps / V)``, q the one-hot of a
class index or the given probabilities) of mass ``S = sum_c q'_c``, the loss is

    S lse - <q', u> + z_loss lse**2,

and its gradient in u is ``(S + 2 z_loss lse) softmax(u) - q'``. The chain to z multiplies by
``(1 - tanh(z / c)**2) / T``; to the inputs, ``dh = G @ W``, ``dW = G.T @ h``, ``db = sum G``.
Only one block's logits exist at a time. The loss and its gradients in one pass are
`token_gradients`'; a backward pass that has the forward's lse works a block of classes at a
time instead (`class_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .._platform import Array, Namespace, shards_along_first_axis
from .arithmetic import exponentiate, multiply, product, subtract, widened
from .indexing import add_finite_at, is_index

__all__ = [
    "BlockTarget",
    "Head",
    "HeadArrays",
    "HeadRows",
    "block_bounds",
    "block_loss",
    "block_loss_tangent",
    "block_rows",
    "block_target",
    "logit_cotangent",
    "logit_tangent",
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
    filter_eps: float | None = None  # gradient filtering (see `filtering`); None: exact


# The fewest tokens per block that the rule from the shapes picks: 256, or as many as make
# MIN_BLOCK_LOGITS logits where the vocabulary is larger. Thinner blocks make thin matrix
# products, well below a processor's peak, and more per-block overhead. A loop primitive (JAX's
# lax.map) keeps a few blocks' temporaries alive at once, hence its lower floor for the blocks
# of the rule that keeps a logsumexp; an eager library updates one block's arrays in place and
# holds about one block at a time. Blocks that compute the gradients as they go
# (`token_gradients`) add a product as deep as the block into the whole weight gradient, one
# pass over it per block, so they take twice the floor, in a loop primitive too (a scan adds
# each block's share through a temporary and a second pass over the sum: half as many blocks,
# half as many passes). Blocks of a forward pass alone keep nothing for later: twice the floor
# eagerly, half of it in a loop primitive. In a loop primitive both are rounded down to a
# power of two (XLA's products on CPU run a block of 166 tokens at 1.4x the time of one of
# 128).
MIN_BLOCK_TOKENS = 256
MIN_BLOCK_LOGITS = 2**24
MIN_LOOPED_BLOCK_LOGITS = 2**21


def block_rows(
    n_tokens: int,
    dim: int,
    n_classes: int,
    chunk_size: int | None,
    looped: bool = False,
    kind: str = "recompute",
) -> int:
    """Tokens per block: `chunk_size`, else as many as keep one block's logits no larger than
    the hidden states (rows x V <= N x D), but at least the smaller of `MIN_BLOCK_TOKENS` and
    `MIN_BLOCK_LOGITS` / V (`MIN_LOOPED_BLOCK_LOGITS` / V when `looped`, the blocks run in a
    loop primitive) and at least one, and at most N. That is the floor of the `kind`
    "recompute" (the rule that keeps a logsumexp); "gradients" (a pass that computes them)
    takes twice both floors, and "plain" (a forward pass alone) twice both eagerly and half of
    `MIN_BLOCK_LOGITS` in a loop primitive, both rounded down to a power of two there."""
    if chunk_size is not None:
        return max(1, min(chunk_size, n_tokens))
    classes = max(n_classes, 1)
    tokens, logits = MIN_BLOCK_TOKENS, MIN_BLOCK_LOGITS
    if kind == "gradients" or (kind == "plain" and not looped):
        tokens, logits = 2 * tokens, 2 * logits
    elif looped:
        logits = {"recompute": MIN_LOOPED_BLOCK_LOGITS, "plain": logits // 2}[kind]
    floor = max(1, min(tokens, logits // classes))
    if looped and kind != "recompute":
        floor = 1 << (floor.bit_length() - 1)
    return max(1, min(n_tokens, max(floor, (n_tokens * dim) // classes)))


def block_bounds(n_tokens: int, rows: int) -> list[tuple[int, int]]:
    """(start, stop) of each block; the last may be shorter."""
    return [(start, min(start + rows, n_tokens)) for start in range(0, n_tokens, rows)]


def scaled_logits(
    xp: Namespace, head: Head, h: Array, weight: Array, bias: Array | None
) -> tuple[Array, Array | None]:
    """(u, tanh(z / c)): the block's scaled logits, and the capped ones (None without a
    softcap), from which `logit_cotangent` takes the slope du/dz."""
    # Computed as (W @ h.T).T, the vocabulary along the product's rows: a block of a few
    # hundred tokens times the whole vocabulary runs much nearer a full product's speed that
    # way round (docs: Large vocabularies).
    z = xp.matrix_transpose(product(xp, weight, xp.matrix_transpose(h)))
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
    z = xp.sum(widened(xp, h) * widened(xp, picked), axis=-1, keepdims=True)
    if bias is not None:
        z = z + xp.reshape(xp.take(bias, flat, axis=0), z.shape)
    return _scaled(xp, head, z)[0]


def log_normaliser(xp: Namespace, u: Array) -> Array:
    """lse per token, shaped (rows, 1): ``m + log(sum(exp(u - m)))``, m the floor of the row's
    maximum. u's memory may be reused (see `normaliser_parts`)."""
    return normaliser_parts(xp, u)[0]


def normaliser_parts(xp: Namespace, u: Array) -> tuple[Array, Array, Array]:
    """(lse, exp(u - m), sum(exp(u - m))), m the floor of the row's maximum: lse, and the
    pieces that give the softmax without another exponential. u, a block's logits of ours, is
    consumed: where it may be updated, ``exp(u - m)`` is written into its memory (read u
    first), so that a block holds one array of its logits' size rather than two.

    The shift m is a constant to autodiff (floor's derivative is zero), as the exact
    derivative of lse is whatever the shift: a derivative through the maximum (ties spread
    over equal entries) is work thrown away, and PyTorch 2.13's inductor compiles it wrongly
    beside the target's gather. ``u - m <= 1`` keeps the sum from overflowing, and the largest
    term, at least 1, from underflowing. Logits of finite hidden states and weights are
    finite, so m needs no special values.

    Not `normalise.log_total`: its near-one tail reads ``floor(exp(u - m))`` as exactly 1
    at the maximum, which fails where a compiler recomputes u (a softcap's tanh) in two
    fusions with different roundings, so that u - m at the maximum is not exactly 0.
    """
    maximum = xp.floor(xp.max(u, axis=-1, keepdims=True))
    shifted = exponentiate(xp, subtract(xp, u, maximum))
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
    t = block_target(xp, head, target, class_weight, weight.shape[0])
    dot = target_dot(xp, head, u, t, (h, weight, bias))
    lse = log_normaliser(xp, u)
    return token_loss(xp, head, lse, t, dot), lse[..., 0]


class HeadArrays(NamedTuple):
    """A head's arrays: hidden (N, D), the linear layer's weight (V, D) and bias (V,), the
    target ((N,) class indices or (N, V) probabilities) and the class weights (V,)."""

    hidden: Array
    linear_weight: Array
    linear_bias: Array | None = None
    target: Array = None  # (a default only so that the optional bias may come before it)
    weight: Array | None = None


def loss_and_normaliser(xp: Namespace, head: Head, arrays: HeadArrays) -> tuple[Array, Array]:
    """(loss, lse) per token of (N, D) hidden states, a block at a time."""
    hidden, weight, bias, target, class_weight = arrays
    losses, normalisers = [], []
    for start, stop in block_bounds(hidden.shape[0], head.rows):
        loss, lse = block_loss(
            xp, head, hidden[start:stop, ...], weight, bias, target[start:stop, ...], class_weight
        )
        losses.append(loss)
        normalisers.append(lse)
    if not losses:
        empty = widened(xp, xp.zeros_like(hidden[:, 0]))
        return empty, empty
    return xp.concat(losses), xp.concat(normalisers)


class HeadRows(NamedTuple):
    """The layer as one block sees it: the weights and bias (all of them, or a block of
    classes' rows), their tangents, and the tangent of the block's hidden states; a None
    tangent is a zero."""

    linear_weight: Array
    linear_bias: Array | None
    hidden_dot: Array | None
    linear_weight_dot: Array | None
    linear_bias_dot: Array | None


def logit_tangent(xp: Namespace, h: Array, rows: HeadRows) -> Array:
    """The tangent of the logits ``z = h @ W.T + b``: ``dh @ W.T + h @ dW.T + db``, from the
    tangents that are not None (at least one is)."""
    z_dot = None
    for part in (
        None
        if rows.hidden_dot is None
        else product(xp, rows.hidden_dot, xp.matrix_transpose(rows.linear_weight)),
        None
        if rows.linear_weight_dot is None
        else product(xp, h, xp.matrix_transpose(rows.linear_weight_dot)),
        rows.linear_bias_dot,
    ):
        if part is not None:
            z_dot = part if z_dot is None else z_dot + part
    assert z_dot is not None  # (the callers return a zero tangent without tangents)
    return z_dot


def block_loss_tangent(
    xp: Namespace,
    head: Head,
    h: Array,
    target: Array,
    class_weight: Array | None,
    lse: Array | None,
    rows: HeadRows,
) -> tuple[Array, Array, Array]:
    """(loss, lse, the loss's tangent) per token of one block of tokens; lse is recomputed
    when None."""
    weight = rows.linear_weight
    u, capped = scaled_logits(xp, head, h, weight, rows.linear_bias)
    t = block_target(xp, head, target, class_weight, weight.shape[0])
    dot = target_dot(xp, head, u, t, (h, weight, rows.linear_bias))
    parts = None
    if lse is None:
        lse, *parts = normaliser_parts(xp, u)
    else:
        lse = lse[..., None]
    cotangent = logit_cotangent(xp, head, u, lse, t, capped, parts=parts)
    loss_dot = xp.sum(cotangent * logit_tangent(xp, h, rows), axis=-1)
    return token_loss(xp, head, lse, t, dot), lse[..., 0], loss_dot


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
    softmax s without another exponential; du/dz is ``(1 - tanh(z / c)**2) / T``. Like
    `normaliser_parts`, it writes into u (or ``exp(u - m)``) where it may: read them first."""
    factor = t.mass
    if head.z_loss:
        factor = factor + (2.0 * head.z_loss) * lse
    per_token = 1.0 / head.temperature if g is None else g / head.temperature
    if parts is None:
        cotangent = multiply(xp, exponentiate(xp, subtract(xp, u, lse)), factor * per_token)
    else:
        cotangent = multiply(xp, parts[0], factor * per_token / parts[1])
    if t.dense is not None:
        cotangent = subtract(xp, cotangent, t.dense * per_token)
    else:
        if not isinstance(t.spread, float) or t.spread:
            cotangent = subtract(xp, cotangent, t.spread * per_token)
        # (The target's weights times g are finite, as every term above is.)
        at_target = -(t.at_index * per_token)
        cotangent = add_finite_at(xp, cotangent, t.classes, cotangent.ndim - 1, at_target)
    if capped is None:
        return cotangent
    return multiply(xp, cotangent, 1.0 - capped * capped)
