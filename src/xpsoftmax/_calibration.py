"""calibration_error and calibration_curve: how well softmax probabilities are calibrated.

Also the argument checks shared with `fit_temperature`: logits with the class axis last and at
least one batch axis, and labels that are integer class indices, one per sample.
"""

from __future__ import annotations

import math
from dataclasses import replace

from ._kernels.normalise import normalise, probabilities
from ._platform import Array, array_device, surely_false
from ._validation import Prepared, prepare, to_namespace

__all__ = ["calibration_curve", "calibration_error", "prepare_classified"]

_NORMS = ("l1", "l2", "max")


def _labels(p: Prepared, value: object) -> Array:
    """`value` checked as labels: integer class indices, one per sample, in range when known."""
    xp, x = p.xp, p.x
    labels: Array = to_namespace(xp, x, value, "labels")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if tuple(labels.shape) != tuple(x.shape[:-1]):
        raise ValueError(
            f"labels must have logits' shape without the class axis, {tuple(x.shape[:-1])}; "
            f"got {tuple(labels.shape)}"
        )
    n_classes = x.shape[-1]
    if n_classes == 0 or math.prod(x.shape[:-1]) == 0:
        raise ValueError(f"logits with shape {tuple(x.shape)} hold no sample or no class")
    if surely_false(xp.all((labels >= 0) & (labels < n_classes))):
        raise ValueError(f"labels hold class indices outside [0, {n_classes})")
    return labels


def prepare_classified(
    logits: object, labels: object, axis: int, temperature: object, where: object
) -> tuple[Prepared, Array]:
    """Checked logits, class axis last and at least one batch axis, and checked labels."""
    p = prepare(
        logits,
        axis=axis,
        temperature=temperature,
        where=where,
        move_axis_last=True,
        name="logits",
    )
    if p.x.ndim == 1:  # one sample: give it a batch axis, so batch reductions never see ()
        x = p.x[None, ...]
        where = None if p.where is None else p.xp.broadcast_to(p.where, x.shape)
        p = replace(p, x=x, axes=(1,), where=where)
    labels = to_namespace(p.xp, p.x, labels, "labels")
    if getattr(labels, "ndim", None) == 0 and p.x.shape[0] == 1:
        labels = p.xp.reshape(labels, (1,))
    return p, _labels(p, labels)


def _binned(
    logits: object, labels: object, axis: int, temperature: object, n_bins: object
) -> tuple[Prepared, Array, Array, Array]:
    """(p, per-bin count, summed confidence, summed correctness) of the top-label predictions.

    Bins are chosen by comparisons with the boundaries k / n (each rounded once to the
    dtype), not by ``ceil(n * confidence)``, whose rounding can move a confidence next to a
    boundary into the neighbouring bin: membership is a (samples, n_bins) boolean matrix,
    and each bin's figures are sums of its columns.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    p, labels = prepare_classified(logits, labels, axis, temperature, None)
    xp, device = p.xp, array_device(p.x)
    s = probabilities(p, normalise(p, keep_shifted=False))
    confidence = xp.max(s, axis=-1)
    correct = xp.astype(xp.argmax(s, axis=-1) == labels, s.dtype)  # argmax: first of ties
    edges = xp.arange(1, n_bins, dtype=s.dtype, device=device) / n_bins
    below = xp.concat([xp.asarray([-xp.inf], dtype=s.dtype, device=device), edges])
    above = xp.concat([edges, xp.asarray([xp.inf], dtype=s.dtype, device=device)])
    confidence = xp.expand_dims(confidence, axis=-1)
    member = xp.astype((confidence > below) & (confidence <= above), s.dtype)
    batch = tuple(range(member.ndim - 1))
    count = xp.sum(member, axis=batch)
    confidence_sum = xp.sum(member * confidence, axis=batch)
    correct_sum = xp.sum(member * xp.expand_dims(correct, axis=-1), axis=batch)
    return p, count, confidence_sum, correct_sum


def calibration_curve(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    temperature: float | Array = 1.0,
    n_bins: int = 15,
) -> tuple[Array, Array, Array]:
    """The reliability diagram of ``softmax(logits / T)``: per-bin confidence and accuracy.

    Each sample's confidence is its largest probability and its prediction that class (the
    first on ties). Bin k of `n_bins` equal-width bins holds the confidences in
    ``(k / n_bins, (k + 1) / n_bins]``; the first also holds 0.

    Parameters
    ----------
    logits : array
        Real scores; classes lie along `axis`, every other axis indexes samples.
    labels : array
        Integer class indices, the shape of `logits` without `axis`.
    axis : int, optional
        The class axis. Default -1.
    temperature : float or array, optional
        Positive, finite temperature, or one per sample. Default 1.
    n_bins : int, optional
        Number of equal-width bins over [0, 1]. Default 15.

    Returns
    -------
    confidence, accuracy, count : arrays of shape (n_bins,)
        The mean confidence and the fraction of right predictions in each bin, and the
        number of samples in it (the default integer dtype). An empty bin has count 0 and
        confidence and accuracy 0, so nothing divides by zero.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> logits = np.log(np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]]))
    >>> confidence, accuracy, count = xpsoftmax.calibration_curve(
    ...     logits, np.array([0, 1, 0, 1]), n_bins=2)
    >>> confidence.round(6), accuracy, count
    (array([0. , 0.75]), array([0. , 0.75]), array([0, 4]))
    """
    p, count, confidence_sum, correct_sum = _binned(logits, labels, axis, temperature, n_bins)
    xp = p.xp
    divisor = xp.where(count == 0, 1.0, count)
    info = xp.__array_namespace_info__()
    integer = info.default_dtypes(device=array_device(p.x))["integral"]
    return (
        p.finish(confidence_sum / divisor),
        p.finish(correct_sum / divisor),
        xp.astype(count, integer),
    )


def calibration_error(
    logits: Array,
    labels: Array,
    /,
    *,
    axis: int = -1,
    temperature: float | Array = 1.0,
    n_bins: int = 15,
    norm: str = "l1",
) -> Array:
    """Expected calibration error of ``softmax(logits / T)`` over equal-width bins.

    With the bins of `calibration_curve`, N samples, and ``|B_k|``, ``acc_k``, ``conf_k``
    the count, accuracy and mean confidence of bin k: ``"l1"`` (the ECE) is
    ``sum_k |B_k| / N |acc_k - conf_k|``, ``"l2"`` is ``sqrt(sum_k |B_k| / N (acc_k -
    conf_k)**2)``, and ``"max"`` (the MCE) is the largest ``|acc_k - conf_k|`` over nonempty
    bins. torchmetrics' ``MulticlassCalibrationError`` agrees except at a confidence exactly
    on a boundary k / n_bins, which it puts into the bin above.

    Parameters
    ----------
    logits, labels, axis, temperature, n_bins
        As in `calibration_curve`.
    norm : {"l1", "l2", "max"}, optional
        Default "l1".

    Returns
    -------
    array
        A 0-d array of the logits' library, device and floating dtype, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> logits = np.log(np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]]))
    >>> labels = np.array([0, 1, 0, 1])
    >>> round(float(xpsoftmax.calibration_error(logits, labels, n_bins=2)), 6)  # |0.75 - 0.75|
    0.0
    >>> # bins (0.5, 0.75] and (0.75, 1]: gaps |1 - 0.6| and |0.5 - 0.9|, each for half the samples
    >>> round(float(xpsoftmax.calibration_error(logits, labels, n_bins=4)), 6)
    0.4
    """
    if norm not in _NORMS:
        raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
    p, count, confidence_sum, correct_sum = _binned(logits, labels, axis, temperature, n_bins)
    xp = p.xp
    # |B_k| |acc_k - conf_k| is |correct_sum - confidence_sum|: no division for the l1 form.
    gap_times_count = xp.abs(correct_sum - confidence_sum)
    n_samples = math.prod(p.x.shape[:-1])
    if norm == "l1":
        return p.finish(xp.sum(gap_times_count) / n_samples)
    gap = gap_times_count / xp.where(count == 0, 1.0, count)  # 0 in empty bins
    if norm == "max":
        return p.finish(xp.max(gap))
    return p.finish(xp.sqrt(xp.sum(count * gap * gap) / n_samples))
