"""The closed-form derivative rules of softmax, log_softmax and logsumexp (see `rule`).

With the tangent dz of the scaled logits,

    d softmax = s * centred(dz),   d log_softmax = centred(dz),   d logsumexp = T <s, dz>,

where ``centred(v) = v - <s, v>``, taken on v's value at the top entry first (see
`xpsoftmax._kernels.centring`). JAX derives reverse mode from the JVP by itself; PyTorch's
backward calls `vjp`, which is that transpose written out.
"""

from __future__ import annotations

from .._kernels.arithmetic import multiply
from .._kernels.centring import centred, centred_cotangent
from .._kernels.normalise import log_probabilities, log_sum_exp, normalise, probabilities
from .._platform import Array, Namespace, array_namespace
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

__all__ = ["LOGSUMEXP", "LOG_SOFTMAX", "SOFTMAX"]


class _Softmax(Rule):
    name = "softmax"

    def outputs(self, p: Prepared, static: Static, inputs: Inputs) -> tuple[Array, ...]:
        return (probabilities(p, normalise(p, keep_shifted=False)),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        (s,) = outputs
        xp = array_namespace(s)
        logs = _logs_if(tangents, static, inputs)
        dz = scaled_tangent(xp, tangents, inputs.temperature_in(static), logs)
        return s * centred(xp, dz, s, static.axis)

    def vjp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array, needs: Needs
    ) -> Tangents:
        (s,) = outputs
        xp = array_namespace(s)
        # softmax's Jacobian in z is symmetric: its transpose is the JVP formula itself.
        w = multiply(xp, centred(xp, g, s, static.axis), s)
        return _cotangents(xp, static, inputs, w, needs)


class _LogSoftmax(Rule):
    name = "log_softmax"

    def outputs(self, p: Prepared, static: Static, inputs: Inputs) -> tuple[Array, ...]:
        return (log_probabilities(p),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        (logs,) = outputs
        xp, where = array_namespace(logs), inputs.where
        # From the logits where the rule has them (JAX): a derivative taken without the value
        # (a gradient) then leaves the output's accurate tail sum unused, and the compiler
        # drops it. (PyTorch keeps only the output, as its own log_softmax does.)
        s = xp.exp(logs) if inputs.x is None else _probabilities(static, inputs)
        dz = scaled_tangent(xp, tangents, inputs.temperature_in(static), logs)
        out = centred(xp, dz, s, static.axis)
        return out if where is None else xp.where(where, out, 0.0)

    def vjp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array, needs: Needs
    ) -> Tangents:
        (logs,) = outputs
        xp, where = array_namespace(logs), inputs.where
        s = xp.exp(logs)
        if where is not None:  # excluded entries' cotangents are ignored
            g = xp.where(where, g, 0.0)
        w = centred_cotangent(xp, g, s, static.axis)
        return _cotangents(xp, static, inputs, w, needs, logs)


class _LogSumExp(Rule):
    """logsumexp with the reduced axis kept (the public function squeezes it)."""

    name = "logsumexp"
    reads_input = True

    def outputs(self, p: Prepared, static: Static, inputs: Inputs) -> tuple[Array, ...]:
        return (log_sum_exp(p),)

    def jvp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], tangents: Tangents
    ) -> Array:
        s = _probabilities(static, inputs)
        xp, temperature = array_namespace(s), inputs.temperature_in(static)
        logs = _logs_if(tangents, static, inputs)
        dz = scaled_tangent(xp, tangents, temperature, logs)
        inner = xp.sum(s * dz, axis=static.axis, keepdims=True)
        return (
            inner if isinstance(temperature, float) and temperature == 1.0 else inner * temperature
        )

    def vjp(
        self, static: Static, inputs: Inputs, outputs: tuple[Array, ...], g: Array, needs: Needs
    ) -> Tangents:
        s = _probabilities(static, inputs)
        xp = array_namespace(s)
        x_bar = g * s  # the cotangent of z is T g s, and x_bar = w / T
        t_bar = None
        if needs.temperature:
            t = inputs.temperature
            t_bar = temperature_cotangent(xp, x_bar * t, _logs(static, inputs), t, static.axis)
        return Tangents(x_bar, t_bar)


def _probabilities(static: Static, inputs: Inputs) -> Array:
    return SOFTMAX.forward(static, inputs)[0]


def _logs(static: Static, inputs: Inputs) -> Array:
    return log_probabilities(inputs.prepared(static))


def _logs_if(tangents: Tangents, static: Static, inputs: Inputs) -> Array | None:
    """The log-probabilities when a temperature tangent needs them (else None, no work)."""
    return None if tangents.temperature is None else _logs(static, inputs)


def _cotangents(
    xp: Namespace,
    static: Static,
    inputs: Inputs,
    w: Array,
    needs: Needs,
    logs: Array | None = None,
) -> Tangents:
    """The logits' and temperature's cotangents from the cotangent w of the scaled logits."""
    x_bar = over_temperature(w, inputs.temperature_in(static)) if needs.x else None
    t_bar = None
    if needs.temperature:
        logs = _logs(static, inputs) if logs is None else logs
        t_bar = temperature_cotangent(xp, w, logs, inputs.temperature, static.axis)
    return Tangents(x_bar, t_bar)


SOFTMAX = _Softmax()
LOG_SOFTMAX = _LogSoftmax()
LOGSUMEXP = _LogSumExp()
