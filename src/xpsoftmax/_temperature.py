"""fit_temperature: temperature scaling by Newton's method on log(1/T).

With beta = 1/T and z the logits of a sample shifted by their maximum, the mean loss is
``f(beta) = mean(logsumexp(beta z) - beta z_y)``, convex in beta, with ``f' = mean(E_s[z] -
z_y)`` and ``f'' = mean(Var_s[z])`` under ``s = softmax(beta z)``: every Newton step is one pass
of reductions over the data. The search runs on u = log(beta) (positive T for free, and steps
scale with T), safeguarded by a bracket. No optimiser library is involved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from ._calibration import prepare_classified
from ._kernels.arithmetic import exponentiate, multiply
from ._platform import Array, Namespace, array_device, fixed_loop, surely_false, surely_true
from ._validation import Prepared

__all__ = ["fit_temperature"]

#: The largest change of log T in a first step: Newton's step is trusted only this far.
_FIRST_REACH = 2.0
#: Steps where values cannot be read (jit, Dask): with the reach doubling, the first 28 reach
#: any T in the search interval.
_LAZY_STEPS = 30
#: Of those, the last ones: plain Newton steps from the optimum (`_converged_step`), outside
#: the library's loop primitive, so that they carry the derivative.
_STEPS_AFTER_LOOP = 2
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
        weighted = multiply(xp, weights, self.shifted)  # weights' memory is free once summed
        mean = xp.sum(weighted, axis=-1) / total
        second = xp.sum(multiply(xp, weighted, self.shifted), axis=-1) / total
        # Shifted logits are <= 0 with the mass nearest 0, so the raw moments lose few digits.
        variance = xp.where(second > mean * mean, second - mean * mean, 0.0)
        return xp.mean(mean - self.label_logit), xp.mean(variance)


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

    A step is at most `reach` long; each step cut to that length doubles it (the optimum is
    far: get there in a few steps), any other sets it back. Eager arrays stop when a step is
    below sqrt(eps) (Newton's next would be below eps); values that cannot be read (jit, Dask)
    take a fixed number of steps, free of branches, in the library's loop primitive where it
    has one (traced once rather than unrolled), the last two outside it (`_converged_step`).
    """
    xp = loss.xp
    bound = _search_bound(xp, dtype)
    zero = xp.zeros((), dtype=dtype, device=array_device(loss.shifted))
    state = _Bracket(zero, zero - bound, zero + bound, zero + _FIRST_REACH)
    tolerance = math.sqrt(float(xp.finfo(dtype).eps))
    if lazy:
        steps, loop = _LAZY_STEPS - _STEPS_AFTER_LOOP, fixed_loop(loss.shifted)
        if loop is not None:
            state = loop(0, steps, lambda _, s: _newton_update(loss, s)[0], state)
        else:
            for _ in range(steps):
                state = _newton_update(loss, state)[0]
        for _ in range(_STEPS_AFTER_LOOP):
            state = _converged_step(loss, state, tolerance)
        return state.u
    for _ in range(_MAX_STEPS):
        state, step = _newton_update(loss, state)
        if surely_true(xp.abs(step) <= tolerance):
            break
    return state.u


class _Bracket(NamedTuple):
    """The search's state: log beta, the bracket around the root, and the longest step."""

    u: Array
    low: Array
    high: Array
    reach: Array


def _newton_update(loss: _Loss, state: _Bracket) -> tuple[_Bracket, Array]:
    """(the state after one safeguarded Newton step, that step)."""
    xp = loss.xp
    u, low, high, reach = state
    beta = xp.exp(u)
    slope, curvature = loss.derivatives(beta)
    # The root lies above u where the loss still falls, below it where it rises.
    low = xp.where(slope < 0, u, low)
    high = xp.where(slope > 0, u, high)
    newton, cut = _newton_step(xp, slope, beta * curvature, reach)
    candidate = u + newton
    inside = (candidate >= low) & (candidate <= high)
    step = xp.where(inside, candidate, (low + high) / 2) - u
    reach = xp.where(cut & inside, 2 * reach, _FIRST_REACH)
    return _Bracket(u + step, low, high, reach), step


def _converged_step(loss: _Loss, state: _Bracket, tolerance: float) -> _Bracket:
    """The state after a plain Newton step where it is below `tolerance`, else unchanged.

    Taken after the library's loop primitive, whose result may be a constant to autodiff
    (see `fixed_loop`): from the optimum, Newton steps differentiate as the optimum does (one
    gives its first derivative, two its derivatives to the third order). Not `_newton_update`:
    at the optimum its bracket has closed to within a rounding of u, and a step that rounds
    outside it would return the bracket's midpoint, whose derivative the loop did not keep.
    """
    xp = loss.xp
    beta = xp.exp(state.u)
    slope, curvature = loss.derivatives(beta)
    newton, cut = _newton_step(xp, slope, beta * curvature, state.reach)
    converged = ~cut & (xp.abs(newton) <= tolerance)
    return state._replace(u=state.u + xp.where(converged, newton, 0.0))


def _newton_step(
    xp: Namespace, slope: Array, curvature: Array, reach: Array
) -> tuple[Array, Array]:
    """(-slope / curvature, at most `reach` either way; whether it was cut to that length).

    The derivatives are those in log beta. The quotient is taken only where it is within
    reach, so a flat loss (curvature 0) gives the longest step downhill, not a division by
    zero (nor its warning on NumPy backends).
    """
    trusted = xp.abs(slope) < reach * curvature
    quotient = slope / xp.where(trusted, curvature, 1.0)
    # (Not xp.sign: array-api-compat's version for torch writes into its result, which
    # torch.compile cannot trace.)
    uphill = xp.astype(slope < 0, slope.dtype) - xp.astype(slope > 0, slope.dtype)
    return xp.where(trusted, -quotient, reach * uphill), ~trusted


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
    logits, labels, axis
        As in `calibration_curve`: scores with their classes along `axis`, and one integer
        class per sample.
    where : bool array, optional
        Classes to include, broadcastable to `logits`; excluded classes take no part (as in
        `cross_entropy`). A logit of -inf is excluded too.

    Returns
    -------
    array
        T as a 0-d array of the logits' library, device and floating dtype. Eager arrays
        iterate until a step of log T is below the square root of the dtype's epsilon; traced
        arrays (``jax.jit``, ``torch.compile``) and Dask arrays take a fixed 30 steps, which
        reach any T in the search interval, and stay lazy. T is searched in
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
    p, labels = prepare_classified(logits, labels, axis, 1.0, where)
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
