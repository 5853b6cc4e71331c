"""cross_entropy: argument checks, ignored samples and the reduction around its rule
(`xpsoftmax._derivatives.cross_entropy`)."""

from __future__ import annotations

import math
import operator

from ._derivatives.attach import apply
from ._derivatives.cross_entropy import CROSS_ENTROPY
from ._platform import Array, Namespace, surely_false, values_are_known
from ._validation import Prepared, prepare, to_namespace

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
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not (0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
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
    target = to_namespace(xp, p.x, target, "target")
    weights = _class_weights(xp, p, weight)
    ignored = None
    class_indices = xp.isdtype(target.dtype, "integral")
    if class_indices:
        target, ignored = _class_indices(xp, p, target, ignore_index)
    else:
        target = _probabilities(xp, p, target, ignore_index)
    if p.x.shape[axis] == 0:
        label_smoothing = 0.0  # no class to spread probability over: nothing to smooth
    loss = apply(
        CROSS_ENTROPY,
        p,
        target=target,
        weight=weights,
        label_smoothing=float(label_smoothing),
        class_indices=class_indices,
    )
    # (The loss keeps the class axis, of length 1: the sum and mean need not drop it.)
    if ignored is not None:
        loss = xp.where(xp.expand_dims(ignored, axis=axis), 0.0, loss)
    if reduction == "none":
        return p.finish(xp.squeeze(loss, axis=axis))
    total = xp.sum(loss)
    if reduction == "mean":
        total = total / _mean_denominator(xp, loss, target, weights, ignored, class_indices)
    return p.finish(total)


def _class_weights(xp: Namespace, p: Prepared, weight: object) -> Array | None:
    if weight is None:
        return None
    w = to_namespace(xp, p.x, weight, "weight")
    if not xp.isdtype(w.dtype, ("real floating", "integral")):
        raise TypeError(f"weight must hold real numbers, got dtype {w.dtype}")
    n_classes = p.x.shape[p.axes[0]]
    if tuple(w.shape) != (n_classes,):
        raise ValueError(
            f"weight must hold one value per class, shape ({n_classes},); got {tuple(w.shape)}"
        )
    w = xp.astype(w, p.x.dtype)
    if not p.lazy and surely_false(xp.all(xp.isfinite(w))):
        raise ValueError("weight must be finite")
    return w


def _class_indices(
    xp: Namespace, p: Prepared, target: Array, ignore_index: object
) -> tuple[Array, Array | None]:
    """(target with ignored samples pointing at class 0, the ignored samples or None)."""
    (axis,), shape = p.axes, tuple(p.x.shape)
    batch = shape[:axis] + shape[axis + 1 :]
    if tuple(target.shape) != batch:
        raise ValueError(
            f"target holds class indices, so its shape must be logits' shape without "
            f"axis {axis}, {batch}; got {tuple(target.shape)}"
        )
    ignored = None
    if ignore_index is not None:
        ignored = target == _int_argument(ignore_index, "ignore_index")
        # Any real class serves for the gather; the ignored samples' losses are dropped.
        target = xp.where(ignored, xp.zeros_like(target), target)
    if _surely_outside(xp, target, shape[axis]):
        raise ValueError(
            f"target holds class indices outside [0, {shape[axis]})"
            + (
                "; ignore_index is None by default, not -100 as in PyTorch"
                if int(xp.min(target)) < 0
                else ""
            )
        )
    return target, ignored


def _surely_outside(xp: Namespace, target: Array, n_classes: int) -> bool:
    """Whether some class index is known now to lie outside [0, n_classes).

    Two reductions and two reads (the least and the greatest index): comparing every index
    against both bounds costs more. Lazy or traced indices cannot be read and pass.
    """
    if 0 in tuple(target.shape):
        return False
    lowest, highest = xp.min(target), xp.max(target)
    # (Asked of the results: concrete indices closed over by a traced function give tracers.)
    if not values_are_known(lowest):
        return False
    try:
        return int(lowest) < 0 or int(highest) >= n_classes
    except RuntimeError:  # a transform that refuses the read (torch.func.vmap)
        return False


def _int_argument(value: object, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return operator.index(value)


def _probabilities(xp: Namespace, p: Prepared, target: Array, ignore_index: object) -> Array:
    if not xp.isdtype(target.dtype, "real floating"):
        raise TypeError(
            f"target must hold integer class indices or real probabilities, got {target.dtype}"
        )
    if tuple(target.shape) != tuple(p.x.shape):
        raise ValueError(
            f"target holds probabilities, so its shape must be logits' shape "
            f"{tuple(p.x.shape)}; got {tuple(target.shape)}"
        )
    # PyTorch accepts its default -100 here and ignores it; any class it could name is an error.
    if ignore_index is not None and _int_argument(ignore_index, "ignore_index") >= 0:
        raise ValueError(
            f"ignore_index applies to class-index targets only, got {ignore_index!r} with a "
            "probability target"
        )
    return xp.astype(target, p.x.dtype)


def _mean_denominator(
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
