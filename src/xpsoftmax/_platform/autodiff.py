"""Autodiff: whether a mechanism watches an array, and how a library takes a derivative rule."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .namespaces import (
    Array,
    array_device,
    array_namespace,
    attribute,
    compiling_now,
    library_of,
    submodule,
)

__all__ = [
    "block_map",
    "block_scan",
    "conditional",
    "derivative_mechanism",
    "fixed_loop",
    "has_forward_tangent",
    "records_gradients",
    "rematerialiser",
]


def records_gradients(*arrays: Array | None) -> bool:
    """Whether an autodiff mechanism that records operations is watching any of the arrays.

    Asked of libraries whose arrays say so themselves (a ``requires_grad`` flag while their
    gradient mode is on, or a forward-mode tangent): PyTorch. Their derivative rules are then
    attached (see `xpsoftmax._derivatives.attach`); an unwatched call pays nothing for them.
    """
    unpack = None
    for a in arrays:
        if a is None or not hasattr(a, "requires_grad"):
            continue
        if a.requires_grad and _grad_mode(type(a)):
            return True
        if unpack is None:  # (looked up once per call: a backward pass asks of many arrays)
            unpack = _tangent_reader(type(a))
        if _has_tangent(unpack, a):
            return True
    return False


def has_forward_tangent(a: Array) -> bool:
    """Whether `a` carries a forward-mode tangent (a dual tensor, or one inside ``jvp``)."""
    if not hasattr(a, "requires_grad"):
        return False
    return _has_tangent(_tangent_reader(type(a)), a)


def _grad_mode(array_type: type) -> bool:
    is_enabled = attribute(library_of(array_type), "is_grad_enabled")
    return is_enabled is None or bool(is_enabled())


def _tangent_reader(array_type: type) -> Callable[[Array], Any] | None:
    """The ``autograd.forward_ad.unpack_dual`` of the library of `array_type`, if it has one.

    Kept per array type once found (asked several times a call); only eager code writes the
    table, for the reason `compiling_now` gives.
    """
    try:
        return _TANGENT_READERS[array_type]
    except KeyError:
        reader = getattr(submodule(array_type, "autograd.forward_ad"), "unpack_dual", None)
        if not compiling_now(array_type):
            _TANGENT_READERS[array_type] = reader
        return reader


_TANGENT_READERS: dict[type, Callable[[Array], Any] | None] = {}


def _has_tangent(unpack: Callable[[Array], Any] | None, a: Array) -> bool:
    if unpack is None:
        return False
    try:
        return unpack(a).tangent is not None
    except RuntimeError:
        # Inside a transform that cannot answer (torch.func.vmap over a forward-mode level):
        # assume a tangent, which only costs the in-place shortcuts.
        return True


def derivative_mechanism(x: Array) -> tuple[str, Any] | None:
    """How x's library lets a function carry its own derivative rule, if it does.

    ``("custom_jvp", library.custom_jvp)`` for libraries that take a JVP rule and transpose it
    for reverse mode (JAX); ``("autograd_function", library.autograd.Function)`` for those that
    take a backward and a forward-mode rule on a Function class (PyTorch); None for libraries
    with no autodiff (NumPy, CuPy, Dask, array-api-strict), where the rules are not needed.
    """
    array_type = type(x)
    if compiling_now(array_type):
        return _find_mechanism(x)
    # Asked on every call: kept per array type, except while compiling (see `array_namespace`).
    try:
        return _MECHANISMS[array_type]
    except KeyError:
        mechanism = _MECHANISMS[array_type] = _find_mechanism(x)
        return mechanism


_MECHANISMS: dict[type, tuple[str, Any] | None] = {}


def _find_mechanism(x: Array) -> tuple[str, Any] | None:
    # The array type's own module (torch), else its namespace's library (JAX's arrays are
    # defined in jaxlib, its custom_jvp in jax).
    for library in (library_of(type(x)), _namespace_root(x)):
        custom_jvp = attribute(library, "custom_jvp")
        if callable(custom_jvp):
            return "custom_jvp", custom_jvp
        function = attribute(attribute(library, "autograd"), "Function")
        if isinstance(function, type):
            return "autograd_function", function
    return None


def _namespace_root(x: Array) -> Any:
    # The array's own __array_namespace__ where it has one: cheaper than array_namespace.
    method = getattr(type(x), "__array_namespace__", None)
    namespace = method(x) if method is not None else array_namespace(x)
    return sys.modules.get(str(namespace.__name__).partition(".")[0])


def block_map(x: Array) -> Callable[..., Any] | None:
    """The loop primitive of x's library that applies a function to each leading slice of
    stacked arrays, traced once and run one slice after another (JAX's ``lax.map``), for
    libraries that derive reverse mode from a JVP rule; None elsewhere.

    Their compilers unroll a Python loop and may then run its independent iterations side by
    side, each with its own temporaries; a loop primitive keeps one iteration's alive.
    """
    return _loop_primitive(x, "map")


def block_scan(x: Array) -> Callable[..., Any] | None:
    """The loop primitive of x's library that runs a function over the leading slices of
    stacked arrays while carrying a state from one slice to the next, traced once, with
    ``lax.scan``'s signature ``scan(f, init, xs) -> (carry, ys)`` and ``f(carry, x) -> (carry,
    y)``, for libraries that derive reverse mode from a JVP rule; None elsewhere.

    What `block_map` is for blocks that share nothing, this is for blocks that add into one
    sum (a weight gradient): one iteration's temporaries alive, the sum carried in place.
    """
    return _loop_primitive(x, "scan")


def conditional(x: Array) -> Callable[..., Any] | None:
    """The conditional primitive of x's library, ``cond(predicate, if_true, if_false)`` with
    two functions of no arguments that return arrays of the same shapes, of which only the
    chosen one runs, also when traced (JAX's ``lax.cond``), for libraries that derive reverse
    mode from a JVP rule; None elsewhere, where an eager caller reads the predicate itself."""
    return _loop_primitive(x, "cond")


def fixed_loop(x: Array) -> Callable[..., Any] | None:
    """A loop primitive of x's library that runs a body a fixed number of times on a carried
    state, traced once, with ``lax.fori_loop``'s signature ``loop(lower, upper, body, state)``
    and ``body(i, state) -> state``; None where the library has none or runs eagerly.

    JAX's ``lax.fori_loop``, differentiable with a trip count known in Python. While a
    compiler traces the call, a library's ``while_loop`` over a counter carried beside the
    state, run under its ``no_grad``: its result is a constant to autodiff, since PyTorch
    2.13's ``torch.compile`` differentiates ``torch.while_loop`` wrongly (docs: Calibration); a
    caller that wants derivatives takes its last steps outside the loop. Compilers unroll a
    Python loop, so a loop of many steps costs its trace and its compilation many times over,
    and each derivative transform multiplies that.
    """
    loop = _loop_primitive(x, "fori_loop")
    if loop is not None or not compiling_now(type(x)):
        return loop
    library = library_of(type(x))
    while_loop, no_grad = attribute(library, "while_loop"), attribute(library, "no_grad")
    if not (callable(while_loop) and callable(no_grad)):
        return None
    return _counted(while_loop, no_grad, array_namespace(x).asarray, array_device(x))


def _counted(
    while_loop: Callable[..., Any],
    no_grad: Callable[[], Any],
    asarray: Callable[..., Array],
    device: Any,
) -> Callable[..., Any]:
    """``fori_loop`` from ``while_loop(cond, body, carried)``, whose carry is a flat tuple of
    arrays: the counter first, then the fields of the state (a NamedTuple)."""

    def fori_loop(lower: int, upper: int, body: Callable[[Any, Any], Any], state: Any) -> Any:
        rebuild = type(state)

        def more(i: Array, *fields: Array) -> Array:
            return i < upper

        def step(i: Array, *fields: Array) -> tuple[Array, ...]:
            return (i + 1, *body(i, rebuild(*fields)))

        counter = asarray(lower, device=device)
        with no_grad():
            return rebuild(*while_loop(more, step, (counter, *state))[1:])

    return fori_loop


def _loop_primitive(x: Array, name: str) -> Callable[..., Any] | None:
    """``lax.<name>`` of the library of x, if it derives reverse mode from a JVP rule."""
    for library in _jvp_rule_libraries(x):
        loop = attribute(attribute(library, "lax"), name)
        if callable(loop):
            return loop  # type: ignore[no-any-return]
    return None


def _jvp_rule_libraries(x: Array) -> tuple[Any, ...]:
    mechanism = derivative_mechanism(x)
    if mechanism is None or mechanism[0] != "custom_jvp":
        return ()
    return library_of(type(x)), _namespace_root(x)


def rematerialiser(x: Array) -> Callable[..., Any] | None:
    """The transform of x's library that makes a function's reverse mode recompute its
    intermediates from its inputs rather than keep them (JAX's ``checkpoint``), for libraries
    that derive reverse mode from a JVP rule; None elsewhere.

    Such a library keeps whatever the linear part of a JVP reads; a rule that works in blocks
    wraps each block in this so that only the block's inputs are kept.
    """
    for library in _jvp_rule_libraries(x):
        checkpoint = attribute(library, "checkpoint")
        if callable(checkpoint):
            return checkpoint  # type: ignore[no-any-return]
    return None
