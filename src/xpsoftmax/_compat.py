"""The one module that talks to array-api-compat, and the capability questions we ask of arrays.

Everything framework-specific the library needs is phrased here as a question about an array
("is it lazy?", "may we update it in place?"), never as a framework's name.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Callable, Iterator
from typing import Any

from array_api_compat import array_namespace as _array_namespace
from array_api_compat import device as _device
from array_api_compat import is_array_api_obj, is_lazy_array, is_writeable_array

__all__ = [
    "Array",
    "Namespace",
    "all_below_now",
    "array_device",
    "array_namespace",
    "as_array",
    "can_update_in_place",
    "compiles_eagerly",
    "derivative_mechanism",
    "eager_kernel",
    "is_compiling",
    "is_lazy_array",
    "may_warn_on_overflow",
    "namespace_of",
    "no_updates_in_place",
    "on_host",
    "records_gradients",
    "sets_at_integer_indices",
    "surely_false",
    "surely_true",
    "values_are_known",
    "writes_into_out",
]

Array = Any
Namespace = Any


def array_namespace(*arrays: Array) -> Namespace:
    """array-api-compat's ``array_namespace``, answered from a per-type table for one array.

    Its checks cost 1 to 3 us, on every call of every function; one array type always has
    the same namespace. While a library compiles Python (``compiler.is_compiling``: PyTorch)
    the table is not read: torch.compile guards on the globals it reads, and a table that
    grows later would make it compile again.
    """
    if len(arrays) == 1:
        array_type = type(arrays[0])
        if not _compiling_now(array_type):
            namespace = _NAMESPACES.get(array_type)
            if namespace is None:
                namespace = _array_namespace(*arrays)
                _NAMESPACES[array_type] = namespace
            return namespace
    return _array_namespace(*arrays)


# Filled by `array_namespace` only; a few entries, one per array type seen.
_NAMESPACES: dict[type, Namespace] = {}


def as_array(value: object, name: str) -> Array:
    """Return `value` if it is an array; Python scalars and sequences become NumPy arrays."""
    if is_array_api_obj(value):
        return value
    if isinstance(value, (bool, int, float, list, tuple)):
        # The one place the library names a framework: Python input is taken as NumPy input.
        import numpy as np

        return np.asarray(value)
    raise TypeError(f"{name} must be an array or a Python sequence of numbers, got {type(value)!r}")


def array_device(x: Array) -> Any:
    """The device to create new arrays on beside x, or None to leave placement to the library.

    An array spread over several devices (a sharded JAX array) names its sharding as its
    device, and a sharding fits only arrays of x's rank: the small arrays we create (class
    indices, a mask) are then made on the default device, and follow x when combined with it.
    """
    device = _device(x)
    return None if hasattr(device, "device_set") else device


def on_host(x: Array) -> bool:
    """Whether x lives on a CPU device (by the device's name: NumPy's and PyTorch's "cpu",
    array-api-strict's CPU_DEVICE), where working in cache-sized blocks pays; a GPU runs each
    operation as a kernel launch, and many small ones cost more than one large one."""
    return "cpu" in str(array_device(x)).lower()


def namespace_of(xp: Namespace, value: Array, name: str, x_name: str = "x") -> None:
    """Raise TypeError naming `name` when `value` belongs to another array library than x."""
    try:
        other = array_namespace(value)
    except TypeError as error:
        raise TypeError(f"{name} is not an array of a supported library: {error}") from None
    if other is not xp:
        raise TypeError(
            f"{name} is a {type(value).__module__}.{type(value).__name__} but {x_name} belongs to "
            f"{xp.__name__}; pass arrays of one library"
        )


def can_update_in_place(a: Array) -> bool:
    """Whether a temporary we created may be overwritten to save a fresh allocation.

    Lazy arrays gain nothing from it, read-only ones forbid it, and an array that an autodiff
    mechanism records (it requires grad, or carries a forward-mode tangent) may have been
    saved for the backward pass. Nor while the array's library compiles the caller: its
    compiler plans the buffers itself.
    """
    if not is_writeable_array(a) or is_lazy_array(a):
        return False
    if not hasattr(a, "requires_grad"):
        return True
    if a.requires_grad or is_compiling(a):
        return False
    return _IN_PLACE.get() and not _has_forward_tangent(a)


# Off while a derivative rule runs under recording autodiff (a backward pass that builds its
# own graph, for double backward): there even a temporary that requires no gradient may be
# saved by an operation that mixes it with one that does.
_IN_PLACE: contextvars.ContextVar[bool] = contextvars.ContextVar("in_place", default=True)


@contextlib.contextmanager
def no_updates_in_place() -> Iterator[None]:
    """Within: `can_update_in_place` answers False."""
    token = _IN_PLACE.set(False)
    try:
        yield
    finally:
        _IN_PLACE.reset(token)


def records_gradients(*arrays: Array | None) -> bool:
    """Whether an autodiff mechanism that records operations is watching any of the arrays.

    Asked of libraries whose arrays say so themselves (a ``requires_grad`` flag while their
    gradient mode is on, or a forward-mode tangent): PyTorch. Their derivative rules are then
    attached (see `_attach`); an unwatched call pays nothing for them.
    """
    unpack = None
    for a in arrays:
        if a is None or not hasattr(a, "requires_grad"):
            continue
        if a.requires_grad and _grad_mode(type(a)):
            return True
        if unpack is None:  # (looked up once per call: backward asks of eight arrays)
            unpack = _tangent_reader(type(a))
        if _has_tangent(unpack, a):
            return True
    return False


def is_compiling(x: Array) -> bool:
    """Whether x's library is compiling the caller now (torch.compile tracing it)."""
    return _compiling_now(type(x))


def _library_of(array_type: type) -> Any:
    """The top-level module of the library that defines `array_type` (already imported)."""
    return sys.modules.get(array_type.__module__.partition(".")[0])


def _grad_mode(array_type: type) -> bool:
    is_enabled = _attribute(_library_of(array_type), "is_grad_enabled")
    return is_enabled is None or bool(is_enabled())


def _has_forward_tangent(a: Array) -> bool:
    """Whether `a` carries a forward-mode tangent (a dual tensor, or one inside ``jvp``)."""
    if not hasattr(a, "requires_grad"):
        return False
    return _has_tangent(_tangent_reader(type(a)), a)


def _tangent_reader(array_type: type) -> Callable[[Array], Any] | None:
    """The ``autograd.forward_ad.unpack_dual`` of the library of `array_type`, if it has one."""
    forward_ad = sys.modules.get(array_type.__module__.partition(".")[0] + ".autograd.forward_ad")
    return getattr(forward_ad, "unpack_dual", None)


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
    if _compiling_now(array_type):
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
    for library in (_library_of(type(x)), sys.modules.get(_namespace_root(x))):
        custom_jvp = _attribute(library, "custom_jvp")
        if callable(custom_jvp):
            return "custom_jvp", custom_jvp
        function = _attribute(_attribute(library, "autograd"), "Function")
        if isinstance(function, type):
            return "autograd_function", function
    return None


def _attribute(module: Any, name: str) -> Any:
    """``module.name`` or None, read from the module's namespace: a missing name would
    otherwise go through a module ``__getattr__`` and a raised AttributeError (NumPy's:
    microseconds on every call)."""
    return None if module is None else vars(module).get(name)


def _namespace_root(x: Array) -> str:
    # The array's own __array_namespace__ where it has one: a quarter of array_namespace's cost.
    method = getattr(type(x), "__array_namespace__", None)
    namespace = method(x) if method is not None else array_namespace(x)
    return str(namespace.__name__).partition(".")[0]


def values_are_known(a: Array) -> bool:
    """Whether a's values can be read now, to choose a faster path or to raise a clear error.

    Not for lazy arrays (reading would run their graph or fail on a tracer), nor while the
    array's library is compiling the caller (reading a value would break its graph).
    """
    if is_lazy_array(a) and not _is_concrete(a):
        return False
    is_compiling = _compiling_probe(type(a))
    return is_compiling is None or not is_compiling()


def _is_concrete(a: Array) -> bool:
    """Whether a lazy-looking array holds values now: true of a library's eager arrays when
    that library tells them from its tracers by a ``core.Tracer`` type (JAX)."""
    tracer_type = _tracer_type(a)
    return tracer_type is not None and not isinstance(a, tracer_type)


def _tracer_type(a: Array) -> type | None:
    """The ``core.Tracer`` type of a's library, if it has one (looked up, never imported)."""
    library = sys.modules.get(array_namespace(a).__name__.partition(".")[0])
    tracer_type = getattr(getattr(library, "core", None), "Tracer", None)
    return tracer_type if isinstance(tracer_type, type) else None


def _compiling_probe(array_type: type) -> Any:
    """The ``compiler.is_compiling`` function of the library that defines `array_type`, if any.

    Asked of the library already imported by whoever made the array, so nothing is imported
    here and no library is named.
    """
    # No cache here: torch.compile guards on the globals it reads, and a cache filled while
    # it traces the first call would make it compile the second call again. The submodule is
    # looked up in sys.modules, not as an attribute: a library without one (NumPy) would answer
    # through its module ``__getattr__`` and a raised AttributeError, microseconds every call.
    compiler = sys.modules.get(array_type.__module__.partition(".")[0] + ".compiler")
    return getattr(compiler, "is_compiling", None)


def _compiling_now(array_type: type) -> bool:
    """Whether the library of `array_type` is compiling the caller now."""
    probe = _compiling_probe(array_type)
    return probe is not None and bool(probe())


def surely_false(condition: Array) -> bool:
    """True when the 0-d boolean `condition` can be read now and is False.

    Callers use it to skip work or checks that are only needed when the condition holds, so
    "cannot tell" answers False: lazy or traced arrays, and libraries that refuse to read a
    value inside a transform (``torch.func.vmap`` raises RuntimeError).
    """
    if not values_are_known(condition):
        return False
    try:
        return not bool(condition)
    except RuntimeError:
        return False


def all_below_now(xp: Namespace, values: Array, limit: float) -> bool:
    """True when `values`, an eager array whose values are known, surely has ``|v| < limit``.

    One elementwise operation, one reduction and one scalar read (a NaN anywhere makes
    the largest magnitude NaN, which is not below anything). A sum would be as short but warns
    on ``inf + -inf``, and ``all(isfinite(...))`` costs several times more on some libraries.
    A library that refuses the read inside a transform (``torch.func.vmap``) answers False:
    callers then take their general path, which is correct for every input. The caller has
    checked `values_are_known`; this does not ask again.
    """
    try:
        largest = xp.max(xp.abs(values))
        if getattr(largest, "requires_grad", False):
            # Reading a float from an array that records gradients warns; a comparison does not.
            return bool(largest < limit)
        # (A Python comparison: an array comparison with a scalar costs a dispatch more.)
        return float(largest) < limit
    except RuntimeError:
        return False


def may_warn_on_overflow(x: Array) -> bool:
    """Whether operations on x may report a floating-point overflow as a warning.

    Libraries that run each operation on NumPy's kernels do (NumPy, array-api-strict, Dask's
    chunks), even where infinity is the right result; libraries with a compiler of their own
    (a ``jit``: JAX, PyTorch) never do, and there the guard against it would only cost time.
    """
    library = sys.modules.get(type(x).__module__.partition(".")[0])
    return not hasattr(library, "jit")


def writes_into_out(xp: Namespace, function: Callable[..., Array]) -> bool:
    """Whether an elementwise function of a namespace can write its result into ``out=``.

    Universal functions say so (they carry ``nin`` and ``nout``); other libraries' builtins
    (PyTorch's) carry no signature to read, so the first call tries, on a one-element array,
    and the answer is kept per function. The standard has no ``out=``, so only callers that own a
    mutable temporary (`can_update_in_place`) ask, to compute into it rather than allocate.
    """
    if hasattr(function, "nout"):
        return True
    known = _WRITES_INTO_OUT.get(function)
    if known is None:
        probe = xp.zeros((1,))
        try:
            function(probe, out=probe)
            known = True
        except TypeError:
            known = False
        _WRITES_INTO_OUT[function] = known
    return known


# Filled only on eager calls with mutable arrays: a compiler never reaches it (see
# `can_update_in_place`), so it cannot make a compiled function recompile.
_WRITES_INTO_OUT: dict[Any, bool] = {}


def sets_at_integer_indices(xp: Namespace) -> bool:
    """Whether a namespace's arrays take ``a[indices] = values`` with an integer index array.

    The standard leaves it out of ``__setitem__`` (array-api-strict refuses it); NumPy, PyTorch
    and CuPy take it. The first call tries, on a two-element array, and the answer is kept per
    namespace. Only callers that own a mutable temporary (`can_update_in_place`) ask.
    """
    known = _SETS_AT_INTEGER_INDICES.get(xp)
    if known is None:
        probe = xp.zeros((2,))
        try:
            probe[xp.asarray([1])] = 1.0
            known = bool(probe[1] == 1.0)
        except (IndexError, TypeError):
            known = False
        _SETS_AT_INTEGER_INDICES[xp] = known
    return known


# Filled only on eager calls with mutable arrays, as `_WRITES_INTO_OUT` is.
_SETS_AT_INTEGER_INDICES: dict[Namespace, bool] = {}


def surely_true(condition: Array) -> bool:
    """True when the 0-d boolean `condition` can be read now and is True (see `surely_false`)."""
    if not values_are_known(condition):
        return False
    try:
        return bool(condition)
    except RuntimeError:
        return False


def eager_kernel(
    fn: Callable[..., Array], x: Array, static: tuple[tuple[str, Any], ...]
) -> Callable[[Array, Array | None], Array] | None:
    """``fn(x, where=where, **static)`` compiled by x's own library, for immutable concrete x.

    Libraries whose arrays are immutable (JAX) run each operation of an eager call as its
    own compiled kernel, so a composition of a dozen operations pays a dozen dispatches and
    materialises every temporary. For such arrays the library's own ``jit`` (looked up on
    the library already imported, as `_compiling_probe` does, so no framework is named) fuses
    the whole function. One kernel is kept per function, array type and static arguments
    (axis, temperature, ...), which are bound in, so a call passes only ``(x, where)``: the
    cheapest call a compiled function has.

    Returns None, meaning "run `fn` as it is", for

    * mutable arrays (NumPy, PyTorch, CuPy): their eager kernels are fast and `fn` reuses
      its temporaries in place;
    * tracers, i.e. calls already inside the caller's ``jit``, ``vmap`` or ``grad``: the
      caller's transform sees our operations, and nesting a compile would only add work;
    * libraries with no ``jit``, or no tracer type to tell traced from concrete arrays
      (Dask, array-api-strict): nothing is compiled, and nothing is computed.
    """
    if not compiles_eagerly(x):
        return None
    key = (fn, type(x), static)
    try:
        return _EAGER_KERNELS[key]
    except KeyError:
        pass
    if len(_EAGER_KERNELS) >= _MAX_EAGER_KERNELS:
        # Many distinct temperatures, say: start again rather than grow without bound.
        _EAGER_KERNELS.clear()
    kernel = _compile_for(fn, x, dict(static))
    _EAGER_KERNELS[key] = kernel
    return kernel


_MAX_EAGER_KERNELS = 512
_EAGER_KERNELS: dict[
    tuple[Any, type, tuple[tuple[str, Any], ...]], Callable[[Array, Array | None], Array] | None
] = {}


def compiles_eagerly(x: Array) -> bool:
    """Whether `eager_kernel` compiles for arrays like x: immutable, concrete, with a ``jit``.

    Mutable arrays answer no at once (array-api-compat caches that per type). Nothing is
    cached here for them: torch.compile guards on the globals it reads, and a cache filled
    while it traces would make it compile the next call again.
    """
    if is_writeable_array(x) or not is_array_api_obj(x):
        return False
    if type(x) in _EAGER_TYPES:
        return True
    library = sys.modules.get(array_namespace(x).__name__.partition(".")[0])
    tracer_type = _tracer_type(x)
    if (
        not callable(getattr(library, "jit", None))
        or tracer_type is None
        or isinstance(x, tracer_type)
    ):
        return False
    _EAGER_TYPES.add(type(x))
    return True


_EAGER_TYPES: set[type] = set()


def _compile_for(
    fn: Callable[..., Array], x: Array, static: dict[str, Any]
) -> Callable[[Array, Array | None], Array] | None:
    library = sys.modules[array_namespace(x).__name__.partition(".")[0]]

    def kernel(x: Array, where: Array | None) -> Array:
        return fn(x, where=where, **static)

    compiled: Callable[[Array, Array | None], Array] = library.jit(kernel)
    return compiled
