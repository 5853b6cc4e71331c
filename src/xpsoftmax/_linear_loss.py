"""linear_cross_entropy and linear_cross_entropy_vjp: a classifier's loss without its
tokens x vocabulary logits (checks in `_validation.linear`, the math in `_kernels.blocks`, the
rule in `_derivatives.linear_cross_entropy`)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from ._kernels.arithmetic import compute_dtype
from ._kernels.blocks import block_rows
from ._kernels.token_gradients import gradients_and_loss
from ._linear_paths import (
    denominator,
    forward_mode,
    head_of,
    inputs_of,
    kept_tokens,
    per_token_loss,
    reduced,
    restored,
    total,
)
from ._platform import Array, array_namespace, block_map, chunk_map, values_are_known
from ._validation import to_namespace
from ._validation.linear import PreparedHead, prepare_head

__all__ = ["linear_cross_entropy", "linear_cross_entropy_vjp"]


def linear_cross_entropy(
    hidden: Array,
    linear_weight: Array,
    target: Array,
    /,
    *,
    linear_bias: Array | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    weight: Array | None = None,
    ignore_index: int | None = None,
    chunk_size: int | None = None,
    filter_eps: float | str | None = None,
) -> Array:
    """Cross-entropy of the logits ``hidden @ linear_weight.T + linear_bias``, never held whole.

    The logits of all tokens (tokens x vocabulary numbers) are never built, in the forward
    or the backward pass: the loss works a block of tokens at a time (see `chunk_size`).
    Reduced to a scalar ("mean", "sum") with gradients to be taken, the forward pass computes
    the gradients beside the loss, three matrix products per block, and the backward pass
    only scales them; per token ("none"), the backward pass recomputes the logits from
    hidden, the weights and one saved logsumexp per token (spec: Linear cross-entropy).
    Tokens that add nothing (`ignore_index`, or a class weight of 0) are left out of eager
    calls before any product.

    Parameters
    ----------
    hidden : array
        Hidden states, shape (..., D).
    linear_weight : array
        The classifier's weights, shape (V, D) (PyTorch's ``Linear`` layout).
    target : array
        Integer class indices, shape (...), or class probabilities, shape (..., V).
    linear_bias : array, optional
        The classifier's bias, shape (V,).
    temperature : float, optional
        Positive, finite T: the logits are divided by it. Default 1.
    softcap : float, optional
        c > 0: the logits z become ``c * tanh(z / c)`` before the temperature (Gemma 2).
    z_loss : float, optional
        Non-negative: adds ``z_loss * lse**2`` per token, lse the log of the softmax's
        normaliser (PaLM's z-loss). Default 0.
    label_smoothing : float, optional
        eps in [0, 1]: the target becomes ``(1 - eps) q + eps / V``.
    reduction : {"mean", "sum", "none"}, optional
        As in `cross_entropy`. Default "mean".
    weight : array, optional
        One weight per class, as in `cross_entropy`.
    ignore_index : int, optional
        Class indices only: tokens whose target equals it add nothing and are not counted.
        Default None, nothing ignored (PyTorch's ``linear_cross_entropy`` uses -100).
    chunk_size : int, optional
        Tokens per block. Default: as many as keep one block's logits no larger than hidden,
        but at least 256, or as many as make 2**24 logits where that is fewer (2**21 where
        the blocks run in the library's loop primitive, JAX's ``lax.map``); other floors
        for a forward pass that computes the gradients too, and for plain evaluation (spec:
        Linear cross-entropy). Derivatives taken
        from the logsumexp (PyTorch's backward pass, JAX's tangent) work as many logits at a
        time: every token by a block of classes.
    filter_eps : float or "auto", optional
        Gradient filtering, for the gradients computed in the forward pass: the products of
        a tile of classes are skipped where every ``|p - y|`` of the block's tokens in it
        is below `filter_eps`, the gradients there taken as zero (the loss stays exact).
        "auto" is hidden's dtype's resolution over 32, as in Cut Cross-Entropy. Default
        None: exact gradients. docs/large_vocabularies.rst measures its bias.

    Returns
    -------
    array
        The loss per token (shape (...)), or its sum or mean, in hidden's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> hidden = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> linear_weight = np.array([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    >>> loss = xpsoftmax.linear_cross_entropy(hidden, linear_weight, np.array([0, 1]))
    >>> round(float(loss), 6)  # log(1 + 2 exp(-2)) for each token
    0.239545
    """
    p = prepare_head(
        hidden,
        linear_weight,
        target,
        linear_bias=linear_bias,
        temperature=temperature,
        softcap=softcap,
        z_loss=z_loss,
        label_smoothing=label_smoothing,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
        chunk_size=chunk_size,
        filter_eps=filter_eps,
    )
    options: dict[str, Any] = {
        "temperature": temperature,
        "softcap": softcap,
        "z_loss": z_loss,
        "label_smoothing": label_smoothing,
        "ignore_index": ignore_index,
        "chunk_size": chunk_size,
        "filter_eps": filter_eps,
        "class_indices": p.class_indices,
    }
    chunked = _by_chunks(p, hidden, target, (linear_weight, linear_bias, weight), options)
    if chunked is not None:
        return p.finish(reduced(p, chunked, reduction, p.batch))
    batch = p.batch
    p, places = kept_tokens(p)
    if reduction != "none":
        return p.finish(
            reduced(p, per_token_loss(p), reduction, batch)
            if forward_mode(p)
            else total(p, reduction)
        )
    return p.finish(reduced(p, restored(p.xp, per_token_loss(p), places), reduction, batch))


def _by_chunks(
    p: PreparedHead,
    hidden: Array,
    target: Array,
    whole: tuple[Array | None, ...],
    options: dict[str, Any],
) -> Array | None:
    """The per-token loss, one task per chunk of tokens, where hidden is a chunked lazy array
    whose hidden dimension lies in one chunk (see `xpsoftmax._platform.chunk_map`); None
    elsewhere. The weights go whole to every task."""
    last = hidden.ndim - 1
    mapper = chunk_map(hidden, (last,))
    if mapper is None:
        return None
    xp = p.xp
    target = to_namespace(xp, hidden, target, "target")
    if p.class_indices:  # the hidden dimension's place, of length 1
        target = xp.expand_dims(target, axis=-1)
    present = tuple(a is not None for a in whole)
    tasks = functools.partial(_per_token, present, options)
    given = tuple(a for a in whole if a is not None)
    loss = mapper(
        tasks, target, dtype=compute_dtype(xp, p.hidden.dtype), reduced=(last,), whole=given
    )
    return xp.reshape(loss, (p.hidden.shape[0],))


def _per_token(
    present: tuple[bool, ...],
    options: dict[str, Any],
    hidden: Array,
    target: Array,
    *given: Array,
) -> Array:
    """`linear_cross_entropy` of one chunk of tokens, reduction "none" (see `_by_chunks`)."""
    linear_weight, linear_bias, weight = _placed(present, given)
    options = dict(options)
    if options.pop("class_indices"):
        target = array_namespace(target).squeeze(target, axis=-1)
    return linear_cross_entropy(
        hidden,
        linear_weight,
        target,
        linear_bias=linear_bias,
        weight=weight,
        reduction="none",
        **options,
    )


def _placed(present: tuple[bool, ...], given: tuple[Array, ...]) -> list[Array | None]:
    """The arrays `given` back in their places, None where `present` says there was none."""
    values = iter(given)
    return [next(values) if here else None for here in present]


def linear_cross_entropy_vjp(
    hidden: Array,
    linear_weight: Array,
    target: Array,
    g: Array,
    /,
    *,
    linear_bias: Array | None = None,
    temperature: float = 1.0,
    softcap: float | None = None,
    z_loss: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    weight: Array | None = None,
    ignore_index: int | None = None,
    chunk_size: int | None = None,
    filter_eps: float | str | None = None,
) -> tuple[Array, Array, Array, Array | None]:
    """`linear_cross_entropy` and its gradients in one pass, for libraries without autodiff.

    Parameters
    ----------
    hidden, linear_weight, target : array
        As in `linear_cross_entropy`.
    g : array
        The cotangent of the loss: a scalar for "mean" and "sum", one value per token
        (shape (...)) for "none".
    linear_bias, temperature, softcap, z_loss, label_smoothing, reduction, weight, \
ignore_index, chunk_size, filter_eps
        As in `linear_cross_entropy`.

    Returns
    -------
    tuple
        ``(loss, d_hidden, d_linear_weight, d_linear_bias)``: the loss, and g times its
        gradients, each in its input's dtype (weight and bias gradients of float16 or bfloat16
        input are summed in float32 and rounded once); ``d_linear_bias`` is None without a
        bias. The memory is that of the loss alone: one block's logits at a time.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> hidden = np.array([[1.0, 0.0]])
    >>> linear_weight = np.array([[2.0, 0.0], [0.0, 0.0]])
    >>> loss, d_hidden, d_weight, d_bias = xpsoftmax.linear_cross_entropy_vjp(
    ...     hidden, linear_weight, np.array([0]), np.array(1.0)
    ... )
    >>> round(float(loss), 6), d_bias is None  # log(1 + exp(-2))
    (0.126928, True)
    >>> d_hidden.round(6)  # (softmax - onehot) @ W
    array([[-0.238406,  0.      ]])
    """
    p = prepare_head(
        hidden,
        linear_weight,
        target,
        linear_bias=linear_bias,
        temperature=temperature,
        softcap=softcap,
        z_loss=z_loss,
        label_smoothing=label_smoothing,
        reduction=reduction,
        weight=weight,
        ignore_index=ignore_index,
        chunk_size=chunk_size,
        filter_eps=filter_eps,
    )
    xp, batch, dim = p.xp, p.batch, p.hidden.shape[1]
    cotangent = to_namespace(xp, p.hidden, _scalar_as_number(xp, g), "g")
    wanted = batch if reduction == "none" else ()
    if tuple(cotangent.shape) != wanted:
        raise ValueError(
            f"g must have the loss's shape {wanted} (reduction {reduction!r}); "
            f"got {tuple(cotangent.shape)}"
        )
    cotangent = xp.astype(cotangent, compute_dtype(xp, p.hidden.dtype))
    p, places = kept_tokens(p)
    n_tokens = p.hidden.shape[0]
    if reduction == "none":
        per_token = xp.reshape(cotangent, (-1,))
        if places is not None:
            per_token = xp.take(per_token, xp.nonzero(places < n_tokens)[0], axis=0)
    else:
        per_token = xp.broadcast_to(cotangent, (n_tokens,))
        if reduction == "mean":
            per_token = per_token / denominator(p, per_token)
    if p.ignored is not None:
        per_token = xp.where(p.ignored, 0.0, per_token)
    head = head_of(p)
    if block_map(p.hidden) is not None:  # (a scan: the one-pass blocks' own floor)
        n_classes = p.linear_weight.shape[0]
        rows = block_rows(n_tokens, dim, n_classes, p.chunk_size, True, "gradients")
        head = dataclasses.replace(head, rows=rows)
    grads = gradients_and_loss(xp, head, inputs_of(p), per_token)
    loss = grads.loss if reduction != "none" else restored(xp, grads.loss, places)
    d_hidden = restored(xp, grads.hidden, places)
    d_bias = grads.linear_bias
    return (
        p.finish(reduced(p, loss, reduction, batch)),
        p.finish(xp.reshape(d_hidden, (*batch, dim))),
        p.finish(grads.linear_weight, p.dtypes[1]),
        None if d_bias is None else p.finish(d_bias, p.dtypes[2]),
    )


def _scalar_as_number(xp: object, g: object) -> object:
    """A scalar g of another array library than hidden's (a NumPy scalar beside Dask
    arrays), whose value is known now, as the Python number it holds; g itself otherwise."""
    if getattr(g, "ndim", None) != 0 or not hasattr(g, "__float__"):
        return g
    try:
        same = array_namespace(g) is xp
    except TypeError:
        return g
    return g if same or not values_are_known(g) else float(g)
