"""Attaching the closed-form derivative rules (`registry`) to each framework's autodiff.

The math of a rule is written once; only the attaching differs, by mechanism, which is
found by capability (`derivative_mechanism`), never by a framework's name:

* ``custom_jvp`` (JAX): the rule's JVP, linear in the tangents, is all JAX needs. It derives
  reverse mode by transposing it, higher orders by differentiating it again, and keeps only
  what the linear part reads as residuals (the output, for softmax).
* ``autograd_function`` (PyTorch): a Function whose ``forward`` runs the plain computation
  (nothing is recorded there, so it reuses its temporaries in place), ``backward`` calls the
  rule's VJP in differentiable operations (double backward works), ``jvp`` its JVP for
  forward mode, and ``setup_context`` with a generated vmap rule serves torch.func.

A call whose arrays no autodiff watches takes the plain computation and pays nothing more.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

from .._platform import (
    Array,
    Namespace,
    array_namespace,
    derivative_mechanism,
    is_compiling,
    no_updates_in_place,
    ready_compat_modules,
    records_gradients,
)
from .._validation import Prepared
from .registry import RULES
from .rule import Inputs, Rule, Static

__all__ = ["apply", "call", "define_for_imported_libraries", "define_functions"]


def apply(
    rule: Rule,
    p: Prepared,
    target: Array | None = None,
    weight: Array | None = None,
    label_smoothing: float = 0.0,
    class_indices: bool = False,
) -> Array:
    """The rule's output for the prepared call, differentiable through the closed forms.

    `target` and `weight` are cross_entropy's target and class weights.
    """
    t = None if isinstance(p.temperature, float) else p.temperature
    axis = p.axes[0] if len(p.axes) == 1 else -1
    static = Static(axis, None if t is not None else p.temperature, label_smoothing, class_indices)
    inputs = Inputs(p.x, t, p.where, target, weight)

    def plain() -> Array:
        return rule.outputs(p, static, inputs)[0]

    if len(p.axes) != 1 or p.x.shape[axis] == 0:
        # A call the rules do not cover (several axes, empty slices), where the framework
        # differentiates the composition, which is correct there too.
        return plain()
    return call(rule, static, inputs, plain)


def call(rule: Rule, static: Any, inputs: Any, plain: Callable[[], Array]) -> Array:
    """The rule's output for checked `inputs` (a record of the rule's `inputs_record`, its
    first field the array that decides the mechanism) and `static` (its hashable options),
    differentiable through the closed forms; `plain()` computes it where nothing watches."""
    first = inputs[0]
    mechanism = derivative_mechanism(first)
    watched = mechanism is not None and (
        mechanism[0] == "custom_jvp" or records_gradients(*_differentiable(rule, tuple(inputs)))
    )
    if not watched:
        return plain()
    kind, maker = mechanism  # type: ignore[misc]
    if kind == "custom_jvp":
        return _custom_jvp(rule, maker, array_namespace(first))(static, *inputs)
    compiling = is_compiling(first)
    attached = _ATTACHED.get((rule.name, kind, not compiling))
    if attached is None:
        if compiling:
            # A compiler cannot trace the definition of a class: the Functions are defined
            # on the first eager call (or import, see `define_for_imported_libraries`), and
            # until then a compiled call differentiates the composition, correctly.
            return plain()
        define_functions(maker)
        attached = _ATTACHED[(rule.name, kind, True)]
    return attached(static, *inputs)


def _differentiable(rule: Rule, per_input: tuple[Any, ...]) -> Any:
    """The differentiable inputs' entries of a tuple with one entry per input, in the order
    of the rule's `inputs_record`: its `tangents_record`, as the mechanisms pass them (None
    for a zero or a constant input)."""
    return rule.tangents_record(*[per_input[i] for i in rule.tangent_positions])


def _per_input(rule: Rule, cotangents: Any) -> tuple[Any, ...]:
    """One cotangent per input, in the order of the rule's `inputs_record` (None for the
    constants)."""
    return tuple(getattr(cotangents, f, None) for f in rule.inputs_record._fields)


def _custom_jvp(rule: Rule, custom_jvp: Any, xp: Namespace) -> Callable[..., Array]:
    """The rule as a function of `custom_jvp`'s library, for calls whose logits are in `xp`."""
    key = (rule.name, "custom_jvp", xp)
    if key in _ATTACHED:
        return _ATTACHED[key]

    def primal(static: Any, *arrays: Array | None) -> Array:
        return rule.forward(static, rule.inputs_record(*arrays))[0]

    def jvp(static: Any, primals: tuple[Any, ...], tangents: tuple[Any, ...]) -> Any:
        # The library may hand the rule arrays of another library: NumPy constants for the
        # primals beside traced tangents, or NumPy tangents beside traced primals (JAX, in
        # reverse mode of second order). The rule computes in the call's namespace, so all
        # are brought into it first (a no-op for arrays already there).
        inputs = rule.inputs_record(*(None if a is None else xp.asarray(a) for a in primals))
        dots = _differentiable(
            rule, tuple(None if _is_symbolic_zero(d) else xp.asarray(d) for d in tangents)
        )
        return rule.forward_and_jvp(static, inputs, dots)

    function = custom_jvp(primal, nondiff_argnums=(0,))
    # Symbolic zeros: an input nobody differentiates (a temperature passed as an array, say)
    # costs no work and leaves no residual.
    function.defjvp(jvp, symbolic_zeros=True)
    _ATTACHED[key] = function
    return function  # type: ignore[no-any-return]


def _is_symbolic_zero(tangent: Any) -> bool:
    return tangent is None or type(tangent).__name__ == "SymbolicZero"


def _autograd_function(rule: Rule, function_type: Any, forward_mode: bool) -> Callable[..., Array]:
    """A Function class for the rule; with `forward_mode` it also has the ``jvp`` that
    forward-mode AD needs. The two are apart because torch.compile cannot trace a Function
    that defines ``jvp``, and a compiled call carries no forward-mode tangent."""
    key = (rule.name, "autograd_function", forward_mode)
    if key in _ATTACHED:
        return _ATTACHED[key]
    # The methods find the rule by name in a module-level table: a compiler tracing them can
    # follow a global, not an object held only by a closure.
    name = rule.name

    class RuleFunction(function_type):  # type: ignore[misc]
        generate_vmap_rule = True

        @staticmethod
        def forward(*args: Any) -> Any:
            *arrays, static = args
            rule = RULES[name]
            return rule.forward(static, rule.inputs_record(*arrays))

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
            _setup_context(RULES[name], forward_mode, ctx, inputs, output)

        @staticmethod
        def backward(ctx: Any, g: Array, *_: Any) -> tuple[Any, ...]:
            return _backward(RULES[name], ctx, g)

    class ForwardModeRuleFunction(RuleFunction):
        @staticmethod
        def jvp(ctx: Any, *tangents: Any) -> Any:
            return _forward_tangent(RULES[name], ctx, tangents)

    # Function.apply binds its arguments to forward's signature on every call, for the
    # defaults it might fill in, and works the signature out each time. A signature kept on
    # the function is read back at once, and binding to ``(*args)`` only passes the
    # arguments through, so this one does just that.
    forward = RuleFunction.forward
    forward.__signature__ = _PassThroughSignature.from_callable(forward)  # type: ignore[attr-defined]
    function = ForwardModeRuleFunction if forward_mode else RuleFunction

    def call(static: Any, *arrays: Array | None) -> Array:
        return function.apply(*arrays, static)[0]

    _ATTACHED[key] = call
    return call


def _setup_context(
    rule: Rule, forward_mode: bool, ctx: Any, inputs: tuple[Any, ...], output: Any
) -> None:
    """What a Function keeps for its derivatives: the static arguments, and the arrays the
    rule's derivatives read, no more (softmax and log_softmax need their output alone; the
    logits too only for a temperature's derivative)."""
    *arrays, static = inputs
    ctx.static = static
    if len(output) > 1:
        ctx.mark_non_differentiable(*output[1:])
        # Their gradients are never read: autograd need not fill arrays with zeros.
        ctx.set_materialize_grads(False)
    named = rule.inputs_record(*arrays)
    if not (rule.reads_input or getattr(named, "temperature", None) is not None):
        arrays[0] = None
    ctx.save_for_backward(*arrays, *output)
    if forward_mode:
        ctx.save_for_forward(*arrays, *output)


def _backward(rule: Rule, ctx: Any, g: Array | None) -> tuple[Any, ...]:
    """A Function's backward: the rule's VJP, one cotangent per input (None for the static
    arguments)."""
    saved, n_inputs = ctx.saved_tensors, len(rule.inputs_record._fields)
    if g is None:  # (grads are not materialised: nothing flowed into the output)
        return (None,) * (n_inputs + 1)
    needed = _differentiable(rule, ctx.needs_input_grad[:n_inputs])
    needs = rule.needs_record(*(bool(n) for n in needed))
    recording = records_gradients(g, *saved)
    with no_updates_in_place() if recording else contextlib.nullcontext():
        inputs = rule.inputs_record(*saved[:n_inputs])
        cotangents = rule.vjp(ctx.static, inputs, saved[n_inputs:], g, needs)
    return (*_per_input(rule, cotangents), None)


def _forward_tangent(rule: Rule, ctx: Any, tangents: tuple[Any, ...]) -> tuple[Any, ...]:
    """A Function's jvp: the rule's JVP for the output; the residuals get no tangent."""
    saved, n_inputs = ctx.saved_tensors, len(rule.inputs_record._fields)
    dots = _differentiable(rule, tangents[:n_inputs])
    recording = records_gradients(*dots, *saved)
    with no_updates_in_place() if recording else contextlib.nullcontext():
        inputs = rule.inputs_record(*saved[:n_inputs])
        out_dot = rule.jvp(ctx.static, inputs, saved[n_inputs:], dots)
    return (out_dot, *(None for _ in saved[n_inputs + 1 :]))


class _PassThroughSignature(inspect.Signature):
    """The signature ``(*args)``, whose binding hands the arguments back as they came: all that
    Function.apply reads of it (``bind(...)``, ``apply_defaults()``, ``args``, ``kwargs``)."""

    __slots__ = ()

    def bind(self, /, *args: Any, **kwargs: Any) -> Any:
        return _PassedThrough(args, kwargs)


class _PassedThrough:
    __slots__ = ("args", "kwargs")

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs

    def apply_defaults(self) -> None:
        """``(*args)`` has no defaults to apply."""


def define_functions(function_type: Any) -> None:
    """Define every rule's Function classes for a library, with and without forward mode."""
    for rule in RULES.values():
        for forward_mode in (True, False):
            _autograd_function(rule, function_type, forward_mode)


def define_for_imported_libraries() -> None:
    """At import: define the Function classes of every library already imported that has
    them, so that a first call under a compiler finds them (see `apply`), and their
    array-api-compat namespaces (see `ready_compat_modules`)."""
    ready_compat_modules()
    for name, module in list(sys.modules.items()):
        if "." in name or module is None:
            continue
        function_type = getattr(getattr(module, "autograd", None), "Function", None)
        if isinstance(function_type, type) and hasattr(module, "compile"):
            define_functions(function_type)


# One attached function per rule and mechanism, made at its first use.
_ATTACHED: dict[tuple[Any, ...], Callable[..., Array]] = {}
