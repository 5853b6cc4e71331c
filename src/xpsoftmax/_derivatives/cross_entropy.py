"""cross_entropy's per-sample loss and its closed-form derivatives (see `rule`).

With the shifted logits ``z = (x - m) / T``, ``L = log sum_W exp(z)`` (accurate near 0,
`log_total`) and the log-probabilities ``l = z - L``, the loss of a sample is
``-sum q' l`` over the counted classes (included, with ``q' != 0``), where

* class indices y: ``q'_c = (1 - eps) w_y [c = y] + (eps / K) w_c``;
* probabilities q: ``q'_c = w_c ((1 - eps) q_c + eps / K)``;

w being the class weights (1 without them) and eps the label smoothing, as in
``torch.nn.functional.cross_entropy``. Class indices are gathered, never made into a one-hot:

    (1 - eps) w_y (L - z_y) + (eps / K) sum_c w_c (L - z_c),

so the only per-element temporaries are the logsumexp's own. The loss's tangent in the scaled
logits is ``<c, dz>`` with ``c = S s - q'`` and ``S = sum_W q'``, computed as
``q' expm1(l) + (S - q') s``, which keeps its digits where a probability is close to 1.
A probability target's own tangent enters as ``-sum w (1 - eps) dq l`` over counted classes.
"""

from __future__ import annotations

from .._kernels.arithmetic import divide, exponentiate, multiply, overflow_free, subtract
from .._kernels.indexing import is_index, put_at, take_along
from .._kernels.normalise import Normalised, log_total, normalise, probabilities, shift
from .._platform import (
    Array,
    Namespace,
    all_below_now,
    array_namespace,
    records_gradients,
    values_are_known,
)
from .._validation import Prepared
from .rule import (
    Inputs,
    Needs,
    Rule,
    Static,
    Tangents,
    over_temperature,
    scaled_tangent,
    temperature_cotangent,
)

__all__ = ["CROSS_ENTROPY"]


class _CrossEntropy(Rule):
    """Per-sample loss with the class axis kept; residuals: the per-slice maximum and L."""

    name = "cross_entropy"
    reads_input = True

    def outputs(self, p: Prepared, static: Static, inputs: Inputs) -> tuple[Array, ...]:
        target, weight = inputs.target, inputs.weight
        xp, (axis,) = p.xp, p.axes
        if not static.class_indices:
            n = normalise(p)
            logs_total = log_total(p, n)
            q = _target_weights(xp, static, p.x, target, weight)
            counted = _counted(xp, q, p.where)
            # (Select before multiplying: q * l would make 0 * -inf = NaN where not counted.)
            loss = -xp.sum(
                q * xp.where(counted, n.shifted - logs_total, 0.0), axis=axis, keepdims=True
            )
            return loss, n.maximum, logs_total
        eps = static.label_smoothing
        index = xp.expand_dims(target, axis=axis)
        n, logs_total, loss = _normalised_and_loss(p, index, totals_only=eps == 0.0)
        if weight is not None:
            # (A weight of 0 on an infinite loss adds nothing: select, then multiply.)
            w_target = _along(xp, weight, axis, p.x.ndim, index)
            loss = w_target * xp.where(w_target == 0, 0.0, loss)
        if p.where is not None:
            # An excluded target adds nothing (its z is -inf: select, do not multiply).
            loss = xp.where(take_along(xp, p.where, index, axis), loss, 0.0)
        if eps:
            mass, z_sum = _smoothing_sums(xp, n.shifted, weight, p.where, axis)
            smoothed = (eps / p.x.shape[axis]) * (mass * logs_total - z_sum)
            # (eps = 1 leaves no target term: skip it rather than make 0 * inf.)
            loss = smoothed if eps == 1.0 else (1.0 - eps) * loss + smoothed
        return loss, n.maximum, logs_total

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        x, _, where, target, weight = inputs
        xp, axis = array_namespace(x), static.axis
        parts = _Parts(static, inputs, outputs)
        out = None
        if tangents.x is not None or tangents.temperature is not None:
            logs = parts.logs() if tangents.temperature is not None else None
            dz = scaled_tangent(xp, tangents, inputs.temperature_in(static), logs)
            out = xp.sum(_derivative(xp, static, inputs, parts) * dz, axis=axis, keepdims=True)
        if tangents.target is not None:
            q_dot = _target_weights(xp, static, x, tangents.target, weight, smoothing=False)
            counted = _counted(xp, _target_weights(xp, static, x, target, weight), where)
            term = xp.sum(q_dot * xp.where(counted, parts.logs(), 0.0), axis=axis, keepdims=True)
            q_term = -(1.0 - static.label_smoothing) * term
            out = q_term if out is None else out + q_term
        return out

    def vjp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array, needs: Needs
    ) -> Tangents:
        x, t, where, target, weight = inputs
        xp = array_namespace(x)
        if not (needs.temperature or needs.target) and _is_plain(static, inputs, outputs, g):
            return Tangents(_class_index_gradient(xp, static, inputs, outputs, g))
        parts = _Parts(static, inputs, outputs)
        w = g * _derivative(xp, static, inputs, parts)
        x_bar = over_temperature(w, inputs.temperature_in(static)) if needs.x else None
        t_bar = None
        if needs.temperature:
            t_bar = temperature_cotangent(xp, w, parts.logs(), t, static.axis)
        q_bar = None
        if needs.target:
            counted = _counted(xp, _target_weights(xp, static, x, target, weight), where)
            q_bar = -(1.0 - static.label_smoothing) * g * xp.where(counted, parts.logs(), 0.0)
            if weight is not None:
                q_bar = q_bar * _along(xp, weight, static.axis, x.ndim)
        return Tangents(x_bar, t_bar, q_bar)


CROSS_ENTROPY = _CrossEntropy()


def _along(xp: Namespace, weight: Array, axis: int, ndim: int, index: Array | None = None) -> Array:
    """The class weights shaped to broadcast along `axis`, or gathered at class `index`."""
    shaped = xp.reshape(weight, (weight.shape[0],) + (1,) * (ndim - 1 - axis))
    if index is None:
        return shaped
    return xp.reshape(xp.take(weight, xp.reshape(index, (-1,)), axis=0), index.shape)


def _target_logit(p: Prepared, n: Normalised, index: Array) -> Array:
    """The target's shifted logit z_y, gathered from x (the full shifted array need not exist)
    and given the special values `normalise` gives the whole slice."""
    xp, (axis,) = p.xp, p.axes
    x_target = take_along(xp, p.x, index, axis)
    if p.where is not None:
        x_target = xp.where(take_along(xp, p.where, index, axis), x_target, -xp.inf)
    return shift(p, x_target, n.maximum, n.offset, n.ordinary)


def _normalised_and_loss(
    p: Prepared, index: Array, totals_only: bool
) -> tuple[Normalised, Array, Array]:
    """`normalise`, L and the per-sample loss ``L - z_y`` at the class `index`.

    Eager arrays leave the target out of the sum (`_log_total_and_loss`): a dozen fewer
    operations than `log_total`'s look for near-one slices and its tail sum, which is what
    small batches pay for. Compiled arrays take `log_total`'s tail, which a compiler fuses into
    the reductions the gradient shares, where leaving the target out would add passes of its
    own (the Performance page has the figures).
    """
    if p.lazy:
        n = normalise(p, totals_only=totals_only)
        logs_total = log_total(p, n)
        return n, logs_total, logs_total - _target_logit(p, n, index)
    n = normalise(p, totals_only=totals_only, leave_out=index)
    return n, *_log_total_and_loss(p.xp, n)


def _log_total_and_loss(xp: Namespace, n: Normalised) -> tuple[Array, Array]:
    """(L, L - z_y) from the sum of the exponentials but the target's, `rest`:
    ``L = log1p(rest + expm1(z_y))``.

    Where the target is the maximum, z_y = 0 and L is ``log1p(rest)``: it keeps its digits
    when the target dominates and the loss is tiny. Elsewhere the loss is at least log 2
    (z_y < 0 with ``exp(z_y) <= rest``), and L's absolute accuracy is all it needs. No pass
    over the slices looks for near-one sums.
    """
    z_target, rest = n.left_out, n.total
    total_less_one = rest + xp.expm1(z_target)
    if not n.ordinary:  # empty slices (rest 0, z_y -inf): L = 0, so that they divide to 0
        total_less_one = xp.where(total_less_one == -1.0, 0.0, total_less_one)
    logs_total = xp.log1p(total_less_one)
    return logs_total, logs_total - z_target


def _smoothing_sums(
    xp: Namespace, shifted: Array, weight: Array | None, where: Array | None, axis: int
) -> tuple[Array | int, Array]:
    """(sum of w_c, sum of w_c z_c) over the counted classes: included, of non-zero weight."""
    if weight is None and where is None:
        return shifted.shape[axis], xp.sum(shifted, axis=axis, keepdims=True)
    if weight is None:
        w = xp.astype(where, shifted.dtype)
        counted = where
    else:
        w = xp.broadcast_to(_along(xp, weight, axis, shifted.ndim), tuple(shifted.shape))
        counted = w != 0 if where is None else (w != 0) & where
        w = xp.where(counted, w, 0.0)
    mass = xp.sum(w, axis=axis, keepdims=True)
    # (Select, then multiply: a weight of 0 at a -inf logit adds nothing, not NaN.)
    return mass, xp.sum(w * xp.where(counted, shifted, 0.0), axis=axis, keepdims=True)


def _target_weights(
    xp: Namespace,
    static: Static,
    x: Array,
    target: Array,
    weight: Array | None,
    smoothing: bool = True,
) -> Array:
    """q' for a probability target, shaped like the logits (see the module docstring)."""
    eps, n_classes = static.label_smoothing, x.shape[static.axis]
    if not (eps and smoothing):
        q = target
    elif eps == 1.0:  # the target takes no part (and an infinite one must not make 0 * inf)
        q = xp.zeros_like(target) + 1.0 / n_classes
    else:
        q = (1.0 - eps) * target + eps / n_classes
    return q if weight is None else q * _along(xp, weight, static.axis, x.ndim)


def _counted(
    xp: Namespace,
    q: Array | None,
    where: Array | None,
    like: Array | None = None,
    axis: int = -1,
) -> Array | None:
    """The classes that add to the loss: included, with a non-zero q (None: all of them)."""
    if q is not None and like is not None:  # class weights, not yet shaped like the logits
        q = _along(xp, q, axis, like.ndim)
    if q is None:
        return where
    return q != 0 if where is None else (q != 0) & where


class _Parts:
    """What the derivatives read, recomputed from the logits and the forward's residuals: the
    probabilities, and the log-probabilities only when asked (class indices need them at the
    target alone). L comes from the forward where it can, so its accurate tail is not summed
    again."""

    def __init__(self, static: Static, inputs: Inputs, outputs: tuple[Array, ...]) -> None:
        self.p = inputs.prepared(static)
        self.n = normalise(self.p)
        # Under recording autodiff (a backward that builds its own graph) L must be a
        # function of the logits again: the saved one is a constant to autograd.
        recording = records_gradients(inputs[0])
        self.log_total = log_total(self.p, self.n) if recording else outputs[2]
        self.s = probabilities(self.p, self.n)

    def logs(self) -> Array:
        return self.n.shifted - self.log_total

    def log_at(self, index: Array) -> Array:
        return _target_logit(self.p, self.n, index) - self.log_total


def _derivative(xp: Namespace, static: Static, inputs: Inputs, parts: _Parts) -> Array:
    """c = S s - q', the loss's derivative in the scaled logits, accurate at the target."""
    s = parts.s
    x, _, where, target, weight = inputs
    axis, eps, n_classes = static.axis, static.label_smoothing, x.shape[static.axis]
    if not static.class_indices:
        q = _target_weights(xp, static, x, target, weight)
        total = xp.sum(q if where is None else xp.where(where, q, 0.0), axis=axis, keepdims=True)
        # q' expm1(l) + (S - q') s: equal to S s - q', without its cancellation at s near 1.
        c = q * xp.expm1(parts.logs()) + (total - q) * s
        return c if where is None else xp.where(where, c, 0.0)
    index = xp.expand_dims(target, axis=axis)
    w = 1.0 if weight is None else _along(xp, weight, axis, x.ndim)
    w_target = 1.0 if weight is None else _along(xp, weight, axis, x.ndim, index)
    if where is None:
        mass = n_classes if weight is None else xp.sum(weight)
    else:
        w_full = xp.broadcast_to(w, tuple(s.shape)) if weight is not None else None
        counted = xp.astype(where, s.dtype) if w_full is None else xp.where(where, w_full, 0.0)
        mass = xp.sum(counted, axis=axis, keepdims=True)
        w_target = w_target * xp.astype(take_along(xp, where, index, axis), s.dtype)
    total = (1.0 - eps) * w_target + (eps / n_classes) * mass
    # Everywhere but the target S s - (eps / K) w_c, one product; at the target the accurate
    # form, from its gathered log-probability (s_y near 1 is where S s - q' would cancel).
    bulk = total * s - (eps / n_classes) * w if eps else total * s
    q_target = w_target * (1.0 - eps + eps / n_classes)
    log_target = parts.log_at(index)
    at_target = q_target * xp.expm1(log_target) + (total - q_target) * xp.exp(log_target)
    c = xp.where(is_index(xp, s, index, axis), at_target, bulk)
    return c if where is None else xp.where(where, c, 0.0)


def _is_plain(static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array) -> bool:
    """Whether the fast class-index gradient applies: eager arrays that nobody records, no
    mask, and every slice's maximum finite and small (no special values to handle)."""
    x, _, where, _, _ = inputs
    if not static.class_indices or where is not None:
        return False
    if records_gradients(x, g) or not values_are_known(x):
        return False
    xp = array_namespace(x)
    return all_below_now(xp, outputs[1], overflow_free(xp, x.dtype))


def _divide_unless_one(xp: Namespace, a: Array, temperature: float | Array) -> Array:
    """a / T into a's memory (our own temporary), skipping a division by a Python 1."""
    if isinstance(temperature, float) and temperature == 1.0:
        return a
    return divide(xp, a, temperature)


def _class_index_gradient(
    xp: Namespace, static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array
) -> Array:
    """x_bar = g (S s - q') / T in a few passes over one buffer of our own, updated in place
    where the library allows; the target's entry comes from its gathered logit, in the
    accurate form of `_derivative`."""
    x, _, _, target, weight = inputs
    _, maximum, logs_total = outputs
    axis, eps, n_classes = static.axis, static.label_smoothing, x.shape[static.axis]
    temperature = inputs.temperature_in(static)
    index = xp.expand_dims(target, axis=axis)
    if weight is None:
        w_target, mass = 1.0, 1.0
    else:
        w_target = _along(xp, weight, axis, x.ndim, index)
        mass = (1.0 - eps) * w_target + (eps / n_classes) * xp.sum(weight)
    scale = over_temperature(g, temperature)
    # s = exp((x - m) / T) exp(-L): the row factor g S exp(-L) / T is formed on the small per-row
    # arrays, so the buffer takes three passes (x - m, exp, the product). (Not folded into the
    # exponent, x - (m + T (L - log factor)): that rounds m + ... to the spacing of m, and
    # large logits would lose digits.)
    factor = scale * xp.exp(-logs_total)
    if weight is not None:  # (else the mass is 1)
        factor = factor * mass
    buffer = exponentiate(xp, _divide_unless_one(xp, x - maximum, temperature))
    buffer = multiply(xp, buffer, factor)
    if eps:
        w = 1.0 if weight is None else _along(xp, weight, axis, x.ndim)
        buffer = subtract(xp, buffer, scale * (eps / n_classes) * w)
    if weight is None and not eps:
        # The loss is L - z_y itself, so the target's log-probability is minus it (exactly:
        # IEEE subtraction is antisymmetric), and S = q' = 1 leaves expm1(l_y) alone.
        at_target = xp.expm1(-outputs[0])
    else:
        z_target = over_temperature(take_along(xp, x, index, axis) - maximum, temperature)
        log_target = z_target - logs_total
        q_target = w_target * (1.0 - eps + eps / n_classes)
        at_target = q_target * xp.expm1(log_target) + (mass - q_target) * xp.exp(log_target)
    return put_at(xp, buffer, index, axis, at_target * scale)
