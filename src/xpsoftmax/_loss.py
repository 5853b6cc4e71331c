"""cross_entropy, on top of the one log_softmax."""

from __future__ import annotations

import math

from ._compat import Array, Namespace, array_device, surely_false
from ._softmax import log_probabilities
from ._validation import prepare, to_namespace

__all__ = ["cross_entropy"]

_REDUCTIONS = ("none", "sum", "mean")


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
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not (0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    p = prepare(
        logits, axis=axis, temperature=temperature, where=where, single_axis=True, name="logits"
    )
    xp, (axis,) = p.xp, p.axes
    log_p = log_probabilities(p)
    q = _target_probabilities(xp, log_p, to_namespace(xp, p.x, target, "target"), axis)
    if label_smoothing:
        q = (1.0 - label_smoothing) * q + label_smoothing / log_p.shape[axis]
    # 0 * log(0) is 0 here, and excluded classes add nothing whatever q gives them.
    counted = q != 0 if p.where is None else (q != 0) & p.where
    # (Select before multiplying: q * log_p would make 0 * -inf = NaN, and warn, where not counted.)
    per_sample = -xp.sum(q * xp.where(counted, log_p, 0.0), axis=axis)
    if reduction == "none":
        return p.finish(per_sample)
    total = xp.sum(per_sample)
    if reduction == "mean":
        total = total / max(math.prod(per_sample.shape), 1)
    return p.finish(total)


def _target_probabilities(xp: Namespace, log_p: Array, target: Array, axis: int) -> Array:
    """The target as probabilities shaped like the logits (one-hot for class indices)."""
    n_classes = log_p.shape[axis]
    if xp.isdtype(target.dtype, "integral"):
        batch = log_p.shape[:axis] + log_p.shape[axis + 1 :]
        if tuple(target.shape) != tuple(batch):
            raise ValueError(
                f"target holds class indices, so its shape must be logits' shape without "
                f"axis {axis}, {tuple(batch)}; got {tuple(target.shape)}"
            )
        if surely_false(xp.all((target >= 0) & (target < n_classes))):
            raise ValueError(f"target holds class indices outside [0, {n_classes})")
        classes = xp.arange(n_classes, device=array_device(log_p))
        classes = xp.reshape(classes, (n_classes,) + (1,) * (log_p.ndim - 1 - axis))
        return xp.astype(xp.expand_dims(target, axis=axis) == classes, log_p.dtype)
    if xp.isdtype(target.dtype, "real floating"):
        if tuple(target.shape) != tuple(log_p.shape):
            raise ValueError(
                f"target holds probabilities, so its shape must be logits' shape "
                f"{tuple(log_p.shape)}; got {tuple(target.shape)}"
            )
        return xp.astype(target, log_p.dtype)
    raise TypeError(
        f"target must hold integer class indices or real probabilities, got {target.dtype}"
    )
