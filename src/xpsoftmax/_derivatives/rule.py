"""What every derivative rule is made of: its records, its interface and the temperature parts.

The rules keep the contract of spec: Derivatives (reverse and forward mode, higher orders,
tangents of other libraries, no more memory saved than the framework's own op saves).

Every rule is phrased through the tangent of the scaled logits ``z = x / T``,

    dz = (dx - l dT) / T,

with l the log-probabilities (0 in place of -inf). The exact tangent has x where this has l;
the two differ by a per-slice constant, which no function of the family sees. Reverse mode is
the transpose: a cotangent w of z gives ``x_bar = w / T`` and ``T_bar = -sum(w l) / T``.

What travels between the autodiff mechanisms and a rule is a record with named fields
(`Inputs`, `Tangents`, `Needs`), made once where the mechanism hands over its positional
arguments (`Inputs.of`), and never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .._platform import Array, Namespace, array_namespace, values_are_known
from .._validation import Prepared

__all__ = [
    "Inputs",
    "Needs",
    "Rule",
    "Static",
    "Tangents",
    "finite_log",
    "over_temperature",
    "scaled_tangent",
    "sum_to_shape",
    "temperature_cotangent",
]


@dataclass(frozen=True, slots=True)
class Static:
    """The arguments of one call that are not arrays; hashable, as JAX wants them."""

    axis: int
    temperature: float | None  # None: the temperature is an array among the inputs
    label_smoothing: float = 0.0
    class_indices: bool = False


class Inputs(NamedTuple):
    """A rule's array inputs. Only the logits are always present; the mask, class indices and
    class weights are constants to autodiff."""

    x: Array
    temperature: Array | None = None  # None: a Python number, in `Static`
    where: Array | None = None
    target: Array | None = None  # cross_entropy's class indices or probabilities
    weight: Array | None = None  # cross_entropy's class weights

    @classmethod
    def of(cls, arrays: tuple[Array | None, ...]) -> Inputs:
        """The record of the arrays an autodiff mechanism passes, in `Inputs`' field order."""
        return cls(*arrays)

    def prepared(self, static: Static) -> Prepared:
        """The `Prepared` record of these already checked inputs, for the kernels."""
        x = self.x
        xp = array_namespace(x)
        lazy = not values_are_known(x)
        return Prepared(
            xp, x, (static.axis,), self.temperature_in(static), self.where, x.dtype, lazy
        )

    def temperature_in(self, static: Static) -> float | Array:
        """The temperature of the call: the array among the inputs, else the Python number."""
        return static.temperature if self.temperature is None else self.temperature


class Tangents(NamedTuple):
    """Tangents (or cotangents) of the differentiable inputs; None is a zero."""

    x: Array | None = None
    temperature: Array | None = None
    target: Array | None = None  # probability targets only


class Needs(NamedTuple):
    """Which inputs' cotangents a backward pass asks for."""

    x: bool = True
    temperature: bool = False
    target: bool = False


class Rule:
    """A function of the family with its closed-form derivatives (see the module docstring).

    `outputs` returns the output first, then any residuals a backward pass may reuse; `jvp`
    takes the inputs' tangents and returns the output's; `vjp` takes the output's cotangent
    and returns the cotangents that `needs` asks for.
    """

    #: The rule's name: the key of its attached functions.
    name = ""
    #: Whether the derivatives read the logits (else the output suffices, and only it is saved).
    reads_input = False
    #: The records the mechanisms hand over: the array inputs, in the order they are passed
    #: (the first decides the mechanism); the tangents of the differentiable ones (fields named
    #: as in the inputs); which cotangents a backward pass asks for (the tangents' fields).
    inputs_record: type[Any] = Inputs
    tangents_record: type[Any] = Tangents
    needs_record: type[Any] = Needs
    #: Where each differentiable input sits among the inputs (set per rule, from the records).
    tangent_positions: tuple[int, ...] = ()

    def __init_subclass__(cls, **options: Any) -> None:
        super().__init_subclass__(**options)
        fields = cls.inputs_record._fields
        cls.tangent_positions = tuple(fields.index(f) for f in cls.tangents_record._fields)

    def outputs(self, p: Prepared, static: Any, inputs: Any) -> tuple[Array, ...]:
        """The computation itself, on the prepared logits: the output, then residuals."""
        raise NotImplementedError

    def forward(self, static: Any, inputs: Any) -> tuple[Array, ...]:
        """`outputs` of checked inputs, as the autodiff mechanisms pass them."""
        return self.outputs(inputs.prepared(static), static, inputs)

    def jvp(self, static: Any, inputs: Any, outputs: tuple[Array, ...], tangents: Any) -> Array:
        raise NotImplementedError

    def vjp(
        self, static: Any, inputs: Any, outputs: tuple[Array, ...], g: Array, needs: Any
    ) -> Any:
        raise NotImplementedError

    def forward_and_jvp(self, static: Any, inputs: Any, tangents: Any) -> tuple[Array, Array]:
        """(output, its tangent): what a ``custom_jvp`` rule returns. A rule whose forward
        pass and JVP share their work may compute both at once."""
        outputs = self.forward(static, inputs)
        if all(d is None for d in tangents):
            return outputs[0], outputs[0] * 0.0
        return outputs[0], self.jvp(static, inputs, outputs, tangents)


def finite_log(xp: Namespace, logs: Array) -> Array:
    """log-probabilities with 0 in place of -inf: what multiplies a temperature tangent."""
    return xp.where(logs == -xp.inf, 0.0, logs)


def over_temperature(a: Array, temperature: float | Array) -> Array:
    """a / T, skipping a division by a Python 1."""
    if isinstance(temperature, float) and temperature == 1.0:
        return a
    return a / temperature


def scaled_tangent(
    xp: Namespace, tangents: Tangents, temperature: float | Array, logs: Array | None
) -> Array:
    """``dz = (dx - l dT) / T``; a None tangent is zero, and `logs` is needed only with dT."""
    x_dot, t_dot = tangents.x, tangents.temperature
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
