"""The closed-form derivative rules of softmax, log_softmax and logsumexp, and their shared parts.

Each rule is written once here, against the array API, and `_attach` hands it to the
framework's own autodiff mechanism (JAX's ``custom_jvp``, PyTorch's ``autograd.Function``).
cross_entropy's rule, built from the same parts, is in `_loss_rule`.

Every rule is phrased through the tangent of the scaled logits ``z = x / T``,

    dz = (dx - l dT) / T,

with l the log-probabilities (0 in place of -inf). The exact tangent has x where this has l;
the two differ by a per-slice constant, which no function of the family sees. Then

    d softmax = s * centred(dz),   d log_softmax = centred(dz),   d logsumexp = T <s, dz>,

where ``centred(v) = v - <s, v>``. Reverse mode is the transpose: a cotangent w of z gives
``x_bar = w / T`` and ``T_bar = -sum(w l) / T``. JAX derives it from the JVP by itself;
PyTorch's backward calls `vjp`, which is that transpose written out.

Accuracy where one probability is close to 1: `centred` subtracts v's value at the slice's
largest probability first (``d = v - v_k``, exactly 0 at k), and `centred_cotangent` takes
its transpose's correction at k as a sum of the other, small, terms: neither ever forms
``1 - s_k`` by subtraction, which is why ``d log_softmax_0 / d x_0`` at [0, -40] is 4.25e-18
and not 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._compat import (
    Array,
    Namespace,
    array_device,
    array_namespace,
    values_are_known,
)
from ._core import (
    log_probabilities,
    log_sum_exp,
    multiply,
    normalise,
    probabilities,
    subtract,
)
from ._indexing import put_at, take_along
from ._validation import Prepared

__all__ = [
    "LOGSUMEXP",
    "LOG_SOFTMAX",
    "RULES",
    "SOFTMAX",
    "Rule",
    "Static",
    "centred",
    "centred_cotangent",
    "finite_log",
    "over_temperature",
    "prepared",
    "scaled_tangent",
    "temperature_cotangent",
    "top_index",
]

# Inputs of every rule, in this order: logits, temperature array (None: a Python number in
# Static), mask, and for cross_entropy the target and the class weights. Tangents and
# cotangents are those of the logits, the temperature and the target, in that order (masks,
# class indices and class weights are constants).
Inputs = tuple[Array, Array | None, Array | None, Array | None, Array | None]
Tangents = tuple[Array | None, Array | None, Array | None]


@dataclass(frozen=True, slots=True)
class Static:
    """The arguments of one call that are not arrays; hashable, as JAX wants them."""

    axis: int
    temperature: float | None  # None: the temperature is an array among the inputs
    label_smoothing: float = 0.0
    class_indices: bool = False


def prepared(static: Static, x: Array, t: Array | None, where: Array | None) -> Prepared:
    """The `Prepared` record of already checked inputs, for the core functions."""
    temperature = static.temperature if t is None else t
    xp = array_namespace(x)
    return Prepared(xp, x, (static.axis,), temperature, where, x.dtype, not values_are_known(x))


def temperature_of(static: Static, t: Array | None) -> float | Array:
    """The temperature of a call: the array among the inputs, else the Python number."""
    return static.temperature if t is None else t


class Rule:
    """A function of the family with its closed-form derivatives (see the module docstring).

    `forward` returns the output first, then any residuals a backward pass may reuse; `jvp`
    takes a tangent per input (None: zero) and returns the output's; `vjp` takes the
    output's cotangent and returns a cotangent per array input that `needs` asks for.
    """

    #: The rule's name: the key of its attached functions.
    name = ""
    #: Whether the derivatives read the logits (else the output suffices, and only it is saved).
    reads_input = False

    def outputs(self, p: Prepared, static: Static, *extra: Array | None) -> tuple[Array, ...]:
        """The computation itself: the output, then residuals. `extra` are cross_entropy's
        target and class weights."""
        raise NotImplementedError

    def forward(self, static: Static, *inputs: Array | None) -> tuple[Array, ...]:
        """`outputs` of checked inputs, as the autodiff mechanisms pass them."""
        x, t, where, *extra = inputs
        return self.outputs(prepared(static, x, t, where), static, *extra)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        raise NotImplementedError

    def vjp(
        self,
        static: Static,
        inputs: Inputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: tuple[bool, bool, bool],
    ) -> Tangents:
        raise NotImplementedError


class _Softmax(Rule):
    name = "softmax"

    def outputs(self, p: Prepared, static: Static, *extra: Array | None) -> tuple[Array, ...]:
        return (probabilities(p, normalise(p, keep_shifted=False)),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        (s,) = outputs
        xp = array_namespace(s)
        logs = _logs_if(tangents[1], static, inputs)
        dz = scaled_tangent(xp, tangents[0], tangents[1], temperature_of(static, inputs[1]), logs)
        return s * centred(xp, dz, s, static.axis, top_index(xp, s, static.axis))

    def vjp(
        self,
        static: Static,
        inputs: Inputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: tuple[bool, bool, bool],
    ) -> Tangents:
        (s,) = outputs
        xp = array_namespace(s)
        # softmax's Jacobian in z is symmetric: its transpose is the JVP formula itself.
        w = multiply(xp, centred(xp, g, s, static.axis, top_index(xp, s, static.axis)), s)
        return _cotangents(xp, static, inputs, w, needs)


class _LogSoftmax(Rule):
    name = "log_softmax"

    def outputs(self, p: Prepared, static: Static, *extra: Array | None) -> tuple[Array, ...]:
        return (log_probabilities(p),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        (logs,) = outputs
        xp, where = array_namespace(logs), inputs[2]
        s = xp.exp(logs)
        dz = scaled_tangent(xp, tangents[0], tangents[1], temperature_of(static, inputs[1]), logs)
        out = centred(xp, dz, s, static.axis, top_index(xp, s, static.axis))
        return out if where is None else xp.where(where, out, 0.0)

    def vjp(
        self,
        static: Static,
        inputs: Inputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: tuple[bool, bool, bool],
    ) -> Tangents:
        (logs,) = outputs
        xp, where = array_namespace(logs), inputs[2]
        s = xp.exp(logs)
        if where is not None:  # excluded entries' cotangents are ignored
            g = xp.where(where, g, 0.0)
        w = centred_cotangent(xp, g, s, static.axis, top_index(xp, s, static.axis))
        return _cotangents(xp, static, inputs, w, needs, logs)


class _LogSumExp(Rule):
    """logsumexp with the reduced axis kept (the public function squeezes it)."""

    name = "logsumexp"
    reads_input = True

    def outputs(self, p: Prepared, static: Static, *extra: Array | None) -> tuple[Array, ...]:
        return (log_sum_exp(p),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        s = _probabilities(static, inputs)
        xp, temperature = array_namespace(s), temperature_of(static, inputs[1])
        logs = _logs_if(tangents[1], static, inputs)
        dz = scaled_tangent(xp, tangents[0], tangents[1], temperature, logs)
        inner = xp.sum(s * dz, axis=static.axis, keepdims=True)
        return (
            inner if isinstance(temperature, float) and temperature == 1.0 else inner * temperature
        )

    def vjp(
        self,
        static: Static,
        inputs: Inputs,
        outputs: tuple[Array, ...],
        g: Array,
        needs: tuple[bool, bool, bool],
    ) -> Tangents:
        s = _probabilities(static, inputs)
        xp = array_namespace(s)
        x_bar = g * s  # the cotangent of z is T g s, and x_bar = w / T
        t_bar = None
        if needs[1]:
            w = x_bar * inputs[1]
            t_bar = temperature_cotangent(xp, w, _logs(static, inputs), inputs[1], static.axis)
        return x_bar, t_bar, None


def _probabilities(static: Static, inputs: Inputs) -> Array:
    return SOFTMAX.forward(static, *inputs[:3])[0]


def _logs(static: Static, inputs: Inputs) -> Array:
    return log_probabilities(prepared(static, *inputs[:3]))


def _logs_if(t_dot: Array | None, static: Static, inputs: Inputs) -> Array | None:
    """The log-probabilities when a temperature tangent needs them (else None, no work)."""
    return None if t_dot is None else _logs(static, inputs)


def _cotangents(
    xp: Namespace,
    static: Static,
    inputs: Inputs,
    w: Array,
    needs: tuple[bool, bool, bool],
    logs: Array | None = None,
) -> Tangents:
    """(x_bar, T_bar, None) from the cotangent w of the scaled logits."""
    temperature = temperature_of(static, inputs[1])
    x_bar = over_temperature(w, temperature) if needs[0] else None
    t_bar = None
    if needs[1]:
        logs = _logs(static, inputs) if logs is None else logs
        t_bar = temperature_cotangent(xp, w, logs, inputs[1], static.axis)
    return x_bar, t_bar, None


SOFTMAX = _Softmax()
LOG_SOFTMAX = _LogSoftmax()
LOGSUMEXP = _LogSumExp()
#: Every rule by name (cross_entropy's joins from `_loss_rule`).
RULES: dict[str, Rule] = {rule.name: rule for rule in (SOFTMAX, LOG_SOFTMAX, LOGSUMEXP)}


# -- the shared parts ------------------------------------------------------------------------------


def top_index(xp: Namespace, probs: Array, axis: int) -> tuple[Array, Array]:
    """(index of each slice's largest probability, whether the slice holds any probability).

    Both keep the axis with length 1. Any entry of a tie serves: centring on one of several
    equal values is exact.
    """
    if values_are_known(probs):
        index = xp.argmax(probs, axis=axis, keepdims=True)
    else:
        index = _last_top_position(xp, probs, axis)
    return index, take_along(xp, probs, index, axis) > 0


def _last_top_position(xp: Namespace, probs: Array, axis: int) -> Array:
    """The position of the last of each slice's largest entries, by plain arithmetic and two max
    reductions: compiled by XLA on CPU, an argmax (a reduction of value-position pairs) took
    five times as long as this, and most of a masked softmax's derivative.

    ``1 + (probs - largest) / largest`` is 1 exactly at the largest entries (the difference
    is an exact 0 there, whatever the compiler makes of the division) and below 1 elsewhere,
    so its floor marks them; times the positions, its maximum is the last of them. (An entry
    within rounding of the largest may be marked too: centring on a near-tie keeps every
    digit, as no probability near 1 is involved.) Positions are counted in probs' dtype: exact
    below 2**24 entries per slice in float32 (past that, a neighbouring entry may serve, which
    keeps the result but not its digits at the top). An empty slice gives its last position,
    a NaN one 0: neither has a top to centre on, which `top_index` tells from probs there.
    """
    n = probs.shape[axis]
    largest = xp.max(probs, axis=axis, keepdims=True)
    is_top = xp.floor(1.0 + (probs - largest) / xp.where(largest > 0, largest, 1.0))
    positions = xp.arange(n, device=array_device(probs))  # in the default index dtype
    shape = (n,) + (1,) * (probs.ndim - 1 - axis)
    last = xp.max(
        is_top * xp.reshape(xp.astype(positions, probs.dtype), shape), axis=axis, keepdims=True
    )
    return xp.astype(xp.where(last >= 0, last, 0.0), positions.dtype)


def centred(xp: Namespace, v: Array, probs: Array, axis: int, top: tuple[Array, Array]) -> Array:
    """``v - <probs, v>`` along `axis`, centred on v at the top entry first (exact there)."""
    index, nonempty = top
    # An empty slice has no top to centre on (and its probabilities are all 0).
    d = v - xp.where(nonempty, take_along(xp, v, index, axis), 0.0)
    return subtract(xp, d, xp.sum(probs * d, axis=axis, keepdims=True))


def centred_cotangent(
    xp: Namespace, g: Array, probs: Array, axis: int, top: tuple[Array, Array]
) -> Array:
    """The transpose of `centred`: ``a - e_k sum(a)`` with ``a = g - probs sum(g)``.

    At the top entry k this is minus the sum of a's other entries, each small when probs_k
    is close to 1: no digits are lost to ``1 - probs_k``.
    """
    index, nonempty = top
    a = g - probs * xp.sum(g, axis=axis, keepdims=True)
    at_top = xp.where(nonempty, -xp.sum(a, axis=axis, keepdims=True), 0.0)
    return put_at(xp, a, index, axis, at_top, add=True)


def finite_log(xp: Namespace, logs: Array) -> Array:
    """log-probabilities with 0 in place of -inf: what multiplies a temperature tangent."""
    return xp.where(logs == -xp.inf, 0.0, logs)


def over_temperature(a: Array, temperature: float | Array) -> Array:
    """a / T, skipping a division by a Python 1."""
    if isinstance(temperature, float) and temperature == 1.0:
        return a
    return a / temperature


def scaled_tangent(
    xp: Namespace,
    x_dot: Array | None,
    t_dot: Array | None,
    temperature: float | Array,
    logs: Array | None,
) -> Array:
    """``dz = (dx - l dT) / T``; a None tangent is zero, and `logs` is needed only with dT."""
    if t_dot is None:
        return over_temperature(x_dot, temperature)
    t_term = finite_log(xp, logs) * t_dot
    return over_temperature(-t_term if x_dot is None else x_dot - t_term, temperature)


def temperature_cotangent(
    xp: Namespace, w: Array, logs: Array, temperature: Array, axis: int
) -> Array:
    """``-sum(w l) / T`` along `axis`, summed down to the temperature array's own shape."""
    t_bar = -xp.sum(w * finite_log(xp, logs), axis=axis, keepdims=True) / temperature
    return sum_to_shape(xp, t_bar, tuple(temperature.shape))


def sum_to_shape(xp: Namespace, a: Array, shape: tuple[int, ...]) -> Array:
    """Sum `a` over the axes along which an array of `shape` was broadcast to a's shape."""
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1
    )
    if axes:
        a = xp.sum(a, axis=axes, keepdims=True)
    return xp.reshape(a, shape) if lead else a
