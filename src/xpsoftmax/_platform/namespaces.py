"""Namespaces and devices: the one module that imports array-api-compat."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from typing import Any

from array_api_compat import array_namespace as _array_namespace
from array_api_compat import device as _device
from array_api_compat import is_array_api_obj, is_lazy_array, is_writeable_array

from .versions import require_supported

__all__ = [
    "Array",
    "Namespace",
    "array_device",
    "array_namespace",
    "as_array",
    "attribute",
    "is_array_api_obj",
    "is_lazy_array",
    "is_writeable_array",
    "library_of",
    "namespace_library",
    "namespace_of",
    "on_host",
    "ready_compat_modules",
    "replicated",
    "shards_along_first_axis",
    "submodule",
    "whole_product",
]

Array = Any
Namespace = Any


def array_namespace(*arrays: Array) -> Namespace:
    """array-api-compat's ``array_namespace``, answered from a per-type table for one array.

    Its checks run on every call of every function, and one array type always has the same
    namespace. While a library compiles Python (``compiler.is_compiling``) the table is not
    read: a compiler that guards on the globals it reads would compile again once it grows.
    """
    if len(arrays) == 1:
        array_type = type(arrays[0])
        if not compiling_now(array_type):
            namespace = _NAMESPACES.get(array_type)
            if namespace is None:
                # A library older than we support may fail inside the lookup itself.
                require_supported(array_type.__module__)
                namespace = _array_namespace(*arrays)
                require_supported(namespace.__name__)
                _NAMESPACES[array_type] = namespace
                _LIBRARY_NAMESPACES[_library_name(array_type)] = namespace
            return namespace
        # While compiling: array-api-compat's own lookup runs through
        # ``functools.lru_cache``-wrapped helpers, and torch.compile warns at every one it
        # traces. The namespace an eager call or our import found is read instead, from a
        # table that only eager code writes: a compiler guards on what it reads, and an entry
        # written while it traces would fail its guard at once.
        namespace = _LIBRARY_NAMESPACES.get(_library_name(array_type))
        if namespace is not None:
            return namespace
    return _array_namespace(*arrays)


def ready_compat_modules() -> None:
    """Find the namespace of every library already imported that compiles Python (has
    ``compiler.is_compiling``), so that a first call under that compiler reads it from
    `_LIBRARY_NAMESPACES` (a library imported after us is found by its first eager call).
    Libraries array-api-compat does not wrap are left alone."""
    for name in [name for name in sys.modules if "." not in name]:
        if _compiling_probe(name) is None:
            continue
        with contextlib.suppress(ImportError):
            _LIBRARY_NAMESPACES[name] = importlib.import_module("array_api_compat." + name)


def _library_name(array_type: type) -> str:
    return array_type.__module__.partition(".")[0]


# Filled by `array_namespace` on eager calls only; a few entries, one per array type seen.
_NAMESPACES: dict[type, Namespace] = {}
# The same, per library (by its top-level module's name), for calls under a compiler.
_LIBRARY_NAMESPACES: dict[str, Namespace] = {}


def as_array(value: object, name: str) -> Array:
    """Return `value` if it is an array; Python scalars and sequences become NumPy arrays."""
    # (A library compiling the caller traces only its own arrays: array-api-compat's check,
    # built on cached helpers a compiler warns about, is not needed there. Its answer is kept
    # per type, written by eager calls only, for the reason `compiling_now` gives.)
    value_type = type(value)
    if value_type in _ARRAY_TYPES or compiling_now(value_type):
        return value
    if is_array_api_obj(value):
        _ARRAY_TYPES.add(value_type)
        return value
    if isinstance(value, (bool, int, float, list, tuple)):
        # The one place the library names a framework: Python input is taken as NumPy input.
        import numpy as np

        return np.asarray(value)
    raise TypeError(f"{name} must be an array or a Python sequence of numbers, got {type(value)!r}")


_ARRAY_TYPES: set[type] = set()


def array_device(x: Array) -> Any:
    """The device to create new arrays on beside x, or None to leave placement to the library.

    An array spread over several devices (a sharded JAX array) names its sharding as its
    device, and a sharding fits only arrays of x's rank: the small arrays we create (class
    indices, a mask) are then made on the default device, and follow x when combined with it.
    """
    # (While its library compiles the caller: the standard's attribute, as array-api-compat's
    # helpers are built on cached functions that a compiler warns about.)
    device = x.device if compiling_now(type(x)) else _device(x)
    return None if hasattr(device, "device_set") else device


def shards_along_first_axis(x: Array) -> int:
    """Into how many equal pieces x's first axis is split over devices, as x's type says
    (1 where it says nothing, or x is on one device).

    Asked through the library's ``typeof``, which describes traced and concrete arrays alike
    (a traced array has no device to ask); a type with a ``sharding`` that gives the shape of
    one device's piece (``shard_shape``) answers. A loop over blocks of the first axis then
    takes the same number of rows from each piece: a block that cuts across the pieces'
    borders cannot be sliced where the layout is part of the type (JAX's Explicit axes).
    """
    if x.ndim == 0 or x.shape[0] == 0:
        return 1
    shard_shape = getattr(_type_sharding(x), "shard_shape", None)
    if not callable(shard_shape):
        return 1
    rows = int(shard_shape(tuple(x.shape))[0])
    return x.shape[0] // rows if rows and x.shape[0] % rows == 0 else 1


def replicated(x: Array) -> Array:
    """x laid out whole on every device, where its library lays out arrays by a sharding in
    their type (``sharding.reshard`` to x's own sharding with an empty ``PartitionSpec``);
    x itself elsewhere.

    A product of two arrays split over the same devices along their kept axes (tokens and
    vocabulary) has no layout; one of them, the smaller, is gathered first.
    """
    sharding = _type_sharding(x)
    update = getattr(sharding, "update", None)
    library = attribute(namespace_library(x), "sharding")
    reshard, spec = attribute(library, "reshard"), attribute(library, "PartitionSpec")
    if shards_along_first_axis(x) == 1 or None in (update, reshard, spec):
        return x
    return reshard(x, update(spec=spec()))  # type: ignore[misc]


def whole_product(xp: Namespace, a: Array, b: Array) -> Array:
    """``a @ b`` where b's first axis, the one summed over, is split over devices: laid out
    whole on every device, where the library lays arrays out by a sharding in their type and
    its product takes its result's layout (``out_sharding``); a plain product elsewhere.

    Such a product has no layout of its own (each device holds a partial sum), and a library
    that types layouts asks for one rather than choose; gathering an operand instead would
    gather a block of logits rows whole on every device.
    """
    update = getattr(_type_sharding(b), "update", None)
    spec = attribute(attribute(namespace_library(b), "sharding"), "PartitionSpec")
    if shards_along_first_axis(b) == 1 or None in (update, spec):
        return xp.matmul(a, b)
    if not _takes_out_sharding(xp.matmul):
        return xp.matmul(a, b)
    return xp.matmul(a, b, out_sharding=update(spec=spec()))  # type: ignore[misc]


def _takes_out_sharding(function: Any) -> bool:
    try:
        return "out_sharding" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _type_sharding(x: Array) -> Any:
    """The sharding that x's type carries (the library's ``typeof(x).sharding``), or None."""
    typeof = attribute(namespace_library(x), "typeof")
    return getattr(typeof(x), "sharding", None) if callable(typeof) else None


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


def library_of(array_type: type) -> Any:
    """The top-level module of the library that defines `array_type` (already imported)."""
    return sys.modules.get(array_type.__module__.partition(".")[0])


def namespace_library(x: Array) -> Any:
    """The top-level module of x's namespace (JAX's arrays are defined in jaxlib, its
    functions in jax), looked up among the modules already imported."""
    return sys.modules.get(array_namespace(x).__name__.partition(".")[0])


def submodule(array_type: type, name: str) -> Any:
    """``library.name`` of the library that defines `array_type`, if it is imported.

    Looked up in sys.modules, not as an attribute: a library without one (NumPy) would answer
    through its module ``__getattr__`` and a raised AttributeError, on every call.
    """
    return sys.modules.get(array_type.__module__.partition(".")[0] + "." + name)


def attribute(module: Any, name: str) -> Any:
    """``module.name`` or None, read from the module's namespace (no module ``__getattr__``)."""
    return None if module is None else vars(module).get(name)


def compiling_now(array_type: type) -> bool:
    """Whether the library of `array_type` is compiling the caller now (``compiler.is_compiling``).

    Asked of the library already imported by whoever made the array, so nothing is imported
    here and no library is named. Asked several times a call, so the probe (never its answer)
    is kept per array type, and written only when the answer is no: a compiler guards on the
    globals it reads, and an entry written while it traces would make it compile again.
    """
    try:
        probe = _PROBES[array_type]
    except KeyError:
        probe = _compiling_probe(array_type.__module__.partition(".")[0])
        if probe is not None and probe():
            return True
        _PROBES[array_type] = probe
    return probe is not None and bool(probe())


_PROBES: dict[type, Any] = {}


def _compiling_probe(library_name: str) -> Any:
    """The ``compiler.is_compiling`` of the library named so, if it is imported and has one."""
    return getattr(sys.modules.get(library_name + ".compiler"), "is_compiling", None)
