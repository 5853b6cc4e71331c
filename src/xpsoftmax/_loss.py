"""cross_entropy: argument checks, ignored samples and the reduction around its rule
(`xpsoftmax._derivatives.cross_entropy`)."""

from __future__ import annotations

import math
from typing import Any

from ._chunked import by_chunks
from ._derivatives.attach import apply
from ._derivatives.cross_entropy import CROSS_ENTROPY
from ._platform import Array, Namespace, array_namespace
from ._validation import prepare, to_namespace
from ._validation.targets import (
    check_label_smoothing,
    check_reduction,
    class_indices,
    class_weights,
    probabilities,
)

__all__ = ["cross_entropy"]


def cross_entropy(
    logits: Array,
    target: Array,
    /,
    *,
    axis: int = -1,
    temperature: float | Array = 1.0,
    where: Array | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    weight: Array | None = None,
    ignore_index: int | None = None,
) -> Array:
    """Cross-entropy between a categorical target and ``softmax(logits / T)``.

    Parameters
    ----------
    logits : array
        Real scores; classes lie along `axis`.
    target : array
        Either integer class indices with the shape of `logits` without `axis`, or class
        probabilities with the shape of `logits`.
    axis : int, optional
        The class axis, a single int. Default -1 (PyTorch's ``cross_entropy`` uses axis 1).
    temperature : float or array, optional
        Positive, finite temperature, or one per sample. Default 1.
    where : bool array, optional
        Classes to include: excluded classes take no part in the normalisation and add
        nothing to the loss, even where the target gives them probability.
    label_smoothing : float, optional
        eps in [0, 1]: the target becomes ``(1 - eps) q + eps / K`` for K classes.
    reduction : {"mean", "sum", "none"}, optional
        "none" keeps one loss per sample; "mean" averages over samples. Default "mean".
    weight : array, optional
        One weight per class, as in PyTorch: a sample's loss is weighted by its target's
        class (class indices), or each class's term by its weight (probabilities); with
        class indices "mean" divides by the sum of the counted samples' weights.
    ignore_index : int, optional
        Class indices only: samples whose target equals it add nothing and are not counted
        (PyTorch's default is -100). When every sample is ignored, "mean" is 0, with a zero
        gradient (PyTorch gives NaN).

    Returns
    -------
    array
        The loss per sample ``-sum_i q_i log_softmax_i``, or its sum or mean. A class with
        probability 0 adds 0 even where its logit is -inf.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> float(xpsoftmax.cross_entropy(np.array([[1e8, 1e8]]), np.array([0])))
    0.6931471805599453
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> loss = xpsoftmax.cross_entropy(logits, np.array([0, -100]), ignore_index=-100)
    >>> round(float(loss), 6)  # the first sample alone: log(1 + exp(-2))
    0.126928
    """
    check_reduction(reduction)
    label_smoothing = check_label_smoothing(label_smoothing)
    p = prepare(
        logits,
        axis=axis,
        temperature=temperature,
        where=where,
        single_axis=True,
        full_where=True,  # gathered at the targets, so shaped like the logits
        name="logits",
    )
    xp, (axis,) = p.xp, p.axes
    given = target = to_namespace(xp, p.x, target, "target")
    shape, n_classes = tuple(p.x.shape), p.x.shape[axis]
    weights = class_weights(xp, p.x, weight, n_classes, p.x.dtype, p.lazy)
    ignored = None
    indices = xp.isdtype(target.dtype, "integral")
    if indices:
        batch = shape[:axis] + shape[axis + 1 :]
        rule = f"logits' shape without axis {axis}"
        target, ignored = class_indices(xp, target, batch, n_classes, ignore_index, rule)
    else:
        target = probabilities(xp, target, shape, p.x.dtype, ignore_index, "logits' shape")
    if p.x.shape[axis] == 0:
        label_smoothing = 0.0  # no class to spread probability over: nothing to smooth
    # (The loss keeps the class axis, of length 1: the sum and mean need not drop it.)
    options = {
        "axis": axis,
        "label_smoothing": label_smoothing,
        "ignore_index": ignore_index,
        "class_indices": indices,
    }
    arrays = {
        "target": xp.expand_dims(given, axis=axis) if indices else given,
        "weight": None if weight is None else _along_axis(xp, weights, axis, p.x.ndim),
        "where": p.where,
        "temperature": p.temperature,
    }
    chunked = by_chunks(_per_sample, logits, p, arrays, options, reduced=(axis,))
    if chunked is not None and reduction == "none":
        return chunked
    if chunked is not None:
        loss = xp.expand_dims(chunked, axis=axis)
    else:
        loss = apply(
            CROSS_ENTROPY,
            p,
            target=target,
            weight=weights,
            label_smoothing=float(label_smoothing),
            class_indices=indices,
        )
        if ignored is not None:
            loss = xp.where(xp.expand_dims(ignored, axis=axis), 0.0, loss)
    if reduction == "none":
        return p.finish(xp.squeeze(loss, axis=axis))
    total = xp.sum(loss)
    if reduction == "mean":
        total = total / mean_denominator(xp, loss, target, weights, ignored, indices)
    return p.finish(total)


def _along_axis(xp: Namespace, weight: Array, axis: int, ndim: int) -> Array:
    """Class weights shaped to broadcast along the class `axis` of an array of `ndim` axes."""
    return xp.reshape(weight, tuple(-1 if i == axis else 1 for i in range(ndim)))


def _per_sample(
    logits: Array,
    target: Array,
    *,
    weight: Array | None = None,
    axis: int,
    class_indices: bool,
    **options: Any,
) -> Array:
    """`cross_entropy` of one chunk, reduction "none", from the chunks `by_chunks` hands over:
    class indices with the class axis of length 1, class weights along it."""
    xp = array_namespace(logits)
    if class_indices:
        target = xp.squeeze(target, axis=axis)
    if weight is not None:
        weight = xp.reshape(weight, (-1,))
    return cross_entropy(logits, target, axis=axis, weight=weight, reduction="none", **options)


def mean_denominator(
    xp: Namespace,
    loss: Array,
    target: Array,
    weights: Array | None,
    ignored: Array | None,
    class_indices: bool,
) -> Array | int:
    """What "mean" divides by: the counted samples, or their weights (1 where that is 0, so
    that a batch with nothing counted gives 0, not NaN)."""
    if not class_indices or (weights is None and ignored is None):
        return max(math.prod(loss.shape), 1)
    if weights is None:
        counted = xp.where(ignored, 0.0, xp.ones_like(ignored, dtype=loss.dtype))
    else:
        counted = xp.reshape(xp.take(weights, xp.reshape(target, (-1,)), axis=0), target.shape)
        if ignored is not None:
            counted = xp.where(ignored, 0.0, counted)
    denominator = xp.sum(counted)
    return xp.where(denominator == 0, xp.ones_like(denominator), denominator)
