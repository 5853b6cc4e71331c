"""Temperature scaling and the calibration of softmax probabilities.

`fit_temperature` minimises the mean cross-entropy over one scalar. With beta = 1/T and z the
logits of a sample shifted by their maximum, the loss is ``f(beta) = mean(logsumexp(beta z) -
beta z_y)``, convex in beta, with ``f' = mean(E_s[z] - z_y)`` and ``f'' = mean(Var_s[z])`` under
``s = softmax(beta z)``: every Newton step is one pass of reductions over the data. The search
runs on u = log(beta) (positive T for free, and steps scale with T), safeguarded by a bracket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._compat import (
    Array,
    Namespace,
    array_device,
    can_update_in_place,
    surely_false,
    surely_true,
)
from ._core import exponentiate, normalise, probabilities
from ._validation import Prepared, prepare, to_namespace

__all__ = ["calibration_curve", "calibration_error", "fit_temperature"]

_NORMS = ("l1", "l2", "max")
#: The largest change of log T in one step: Newton's step is trusted only this far.
_MAX_STEP = 2.0
#: Steps where values cannot be read (jit, Dask): enough from T = 1 to any T in the search
#: interval (measured: 8 to 20 steps on our test sets, a quarter of it to cross the interval).
_LAZY_STEPS = 40
_MAX_STEPS = 100


@dataclass(slots=True)
class _Loss:
    """The mean cross-entropy as a function of beta = 1/T, set up once from the logits."""

    xp: Namespace
    shifted: Array  # logits minus each sample's maximum: <= 0, and 0 at excluded entries
    included: Array | None  # None: every entry takes part
    label_logit: Array  # shifted logit of each sample's label
    slope_at_zero: Array  # f'(0): the label's logit against its sample's mean
    undefined: Array  # some label excluded, or a NaN or +inf logit: the loss is not finite

    def derivatives(self, beta: Array) -> tuple[Array, Array]:
        """(f'(beta), f''(beta)): one pass of exp and three sums over the data."""
        xp = self.xp
        weights = exponentiate(xp, beta * self.shifted)
        if self.included is not None:
            weights = xp.where(self.included, weights, 0.0)
        total = xp.sum(weights, axis=-1)
        if self.included is not None:  # a sample with nothing included: NaN comes later
            total = xp.where(total == 0, 1.0, total)
        weighted = _times(weights, self.shifted)  # weights' memory is free once summed
        mean = xp.sum(weighted, axis=-1) / total
        second = xp.sum(_times(weighted, self.shifted), axis=-1) / total
        # Shifted logits are <= 0 with the mass nearest 0, so the raw moments lose few digits.
        variance = xp.where(second > mean * mean, second - mean * mean, 0.0)
        return xp.mean(mean - self.label_logit), xp.mean(variance)


def _times(a: Array, b: Array) -> Array:
    """a * b into a's memory where it may be overwritten (our own temporaries only)."""
    if can_update_in_place(a):
        a *= b
        return a
    return a * b


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


def _prepare(
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
        p.x, p.axes = p.x[None, ...], (1,)
        p.where = None if p.where is None else p.xp.broadcast_to(p.where, p.x.shape)
    labels = to_namespace(p.xp, p.x, labels, "labels")
    if getattr(labels, "ndim", None) == 0 and p.x.shape[0] == 1:
        labels = p.xp.reshape(labels, (1,))
    return p, _labels(p, labels)


def _loss(p: Prepared, labels: Array) -> _Loss:
    """Shift each sample by its maximum and gather the label's logit, once."""
    xp, x = p.xp, p.x
    included = None if p.where is None else xp.broadcast_to(p.where, x.shape)
    undefined = xp.asarray(False, device=array_device(x))
    if p.lazy or not surely_false(xp.any(~xp.isfinite(x))):
        # -inf is an excluded entry; NaN and +inf make the loss undefined (NaN, said below).
        bad = xp.isnan(x) | (x == xp.inf)
        undefined = xp.any(bad if included is None else bad & included)
        finite = xp.isfinite(x)
        included = finite if included is None else included & finite
        x = xp.where(finite, x, 0.0)
    if included is not None:
        x = xp.where(included, x, -xp.inf)
    maximum = xp.max(x, axis=-1, keepdims=True)
    shifted = x - xp.where(maximum > -xp.inf, maximum, 0.0)
    classes = xp.arange(x.shape[-1], device=array_device(x))
    is_label = xp.expand_dims(labels, axis=-1) == classes
    count: Array | int = x.shape[-1]
    if included is not None:
        shifted = xp.where(included, shifted, 0.0)
        undefined = undefined | ~xp.all(xp.any(is_label & included, axis=-1))
        count = xp.sum(xp.astype(included, x.dtype), axis=-1)
        count = xp.where(count == 0, 1.0, count)
    label_logit = xp.sum(xp.where(is_label, shifted, 0.0), axis=-1)
    slope_at_zero = xp.mean(xp.sum(shifted, axis=-1) / count - label_logit)
    return _Loss(xp, shifted, included, label_logit, slope_at_zero, undefined)


def _search_bound(xp: Namespace, dtype: object) -> float:
    """The bound U of the search for log T in [-U, U]: a quarter of the dtype's exponent range.

    beta * z then stays far from overflow for any sensible logits (e^22, about 4e9, in float32;
    1e77 in float64), and a log T beyond it is no calibration anyone can use.
    """
    return math.log(float(xp.finfo(dtype).max)) / 4.0


def _solve(loss: _Loss, lazy: bool, dtype: object) -> Array:
    """log(beta) minimising the loss in [-U, U]: Newton's steps, kept inside a bracket.

    Eager arrays stop when a step is below sqrt(eps) (Newton's next would be below eps);
    values that cannot be read (jit, Dask) take a fixed number of steps, free of branches.
    """
    xp = loss.xp
    bound = _search_bound(xp, dtype)
    zero = xp.zeros((), dtype=dtype, device=array_device(loss.shifted))
    u, low, high = zero, zero - bound, zero + bound
    tolerance = math.sqrt(float(xp.finfo(dtype).eps))
    for _ in range(_LAZY_STEPS if lazy else _MAX_STEPS):
        beta = xp.exp(u)
        slope, curvature = loss.derivatives(beta)
        # The root lies above u where the loss still falls, below it where it rises.
        low = xp.where(slope < 0, u, low)
        high = xp.where(slope > 0, u, high)
        candidate = u + _newton_step(xp, slope, beta * curvature)
        inside = (candidate >= low) & (candidate <= high)
        step = xp.where(inside, candidate, (low + high) / 2) - u
        u = u + step
        if not lazy and surely_true(xp.abs(step) <= tolerance):
            break
    return u


def _newton_step(xp: Namespace, slope: Array, curvature: Array) -> Array:
    """-slope / curvature (the derivatives in log beta), at most `_MAX_STEP` either way.

    The quotient is taken only where it is within bounds, so a flat loss (curvature 0) gives
    the longest step downhill, not a division by zero (nor its warning on NumPy backends).
    """
    trusted = xp.abs(slope) < _MAX_STEP * curvature
    quotient = slope / xp.where(trusted, curvature, 1.0)
    # (Not xp.sign: array-api-compat's version for torch writes into its result, which
    # torch.compile cannot trace.)
    uphill = xp.astype(slope < 0, slope.dtype) - xp.astype(slope > 0, slope.dtype)
    downhill = _MAX_STEP * uphill
    return xp.where(trusted, -quotient, downhill)


def fit_temperature(
    logits: Array, labels: Array, /, *, axis: int = -1, where: Array | None = None
) -> Array:
    """The temperature T minimising the mean ``cross_entropy(logits, labels, temperature=T)``.

    Temperature scaling (Guo et al. 2017): one scalar, fitted on held-out data, that makes
    ``softmax(logits / T)`` calibrated without changing which class wins. The loss is convex
    in 1/T; Newton's method on log T, kept inside a bracket, converges in a few passes, each
    a handful of reductions over the data.

    Parameters
    ----------
    logits : array
        Real scores; classes lie along `axis`, every other axis indexes samples.
    labels : array
        Integer class indices, the shape of `logits` without `axis`.
    axis : int, optional
        The class axis. Default -1.
    where : bool array, optional
        Classes to include, broadcastable to `logits`; excluded classes take no part (as in
        `cross_entropy`). A logit of -inf is excluded too.

    Returns
    -------
    array
        T as a 0-d array of the logits' library, device and floating dtype. Eager arrays
        iterate until a step of log T is below the square root of the dtype's epsilon; traced
        (``jax.jit``) and Dask arrays take a fixed 40 steps and stay lazy. T is searched in
        ``[exp(-U), exp(U)]`` with U a quarter of log(largest float): about ``[2e-10, 4e9]`` in
        float32, ``[1e-77, 1e77]`` in float64; an optimum beyond returns the bound. Where no
        optimum exists the answer is a limit, never a warning:

        * ``0`` when every label is its sample's largest logit (perfectly separated data):
          the loss keeps falling as T goes to 0;
        * ``inf`` when the labels' logits are on average no higher than their samples' mean
          logit (predictions no better than uniform, constant rows included): the loss is
          smallest at T = inf, the uniform distribution;
        * ``NaN`` when the loss is not finite at any T: a label at an excluded class (or a
          -inf logit), or a NaN or +inf logit among the included ones.

        ``cross_entropy`` takes neither 0 nor inf: check `math.isfinite` before using it.

    Examples
    --------
    >>> import numpy as np
    >>> import xpsoftmax
    >>> logits = np.array([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    >>> labels = np.array([0, 0, 1, 1])  # 3 in 4 right, at 98% confidence
    >>> t = xpsoftmax.fit_temperature(logits, labels)
    >>> round(float(t), 6)  # softmax(logits / t) gives the winner probability 3/4
    3.640957
    >>> round(float(xpsoftmax.softmax(logits / t)[0, 0]), 12)
    0.75
    >>> float(xpsoftmax.fit_temperature(logits, np.array([0, 0, 0, 1])))  # all right
    0.0
    """
    p, labels = _prepare(logits, labels, axis, 1.0, where)
    xp = p.xp
    loss = _loss(p, labels)
    separated = xp.all(loss.label_logit == 0)
    useless = loss.slope_at_zero >= 0
    degenerate = separated | useless | loss.undefined
    if not p.lazy and surely_true(degenerate):  # no optimum: nothing to iterate
        u = xp.zeros((), dtype=p.x.dtype, device=array_device(p.x))
    else:
        u = _solve(loss, p.lazy, p.x.dtype)
    temperature = xp.exp(-u)
    temperature = xp.where(separated, 0.0, temperature)
    temperature = xp.where(useless, xp.inf, temperature)
    return p.finish(xp.where(loss.undefined, xp.nan, temperature))


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
    p, labels = _prepare(logits, labels, axis, temperature, None)
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
