"""Eager calls on immutable arrays, compiled whole by the array's own library."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .namespaces import (
    Array,
    compiling_now,
    is_array_api_obj,
    is_writeable_array,
    namespace_library,
)
from .tracing import tracer_type

__all__ = ["compiles_eagerly", "eager_kernel"]

Kernel = Callable[[Array, Array | None], Array]


def eager_kernel(
    fn: Callable[..., Array], x: Array, static: tuple[tuple[str, Any], ...]
) -> Kernel | None:
    """``fn(x, where=where, **static)`` compiled by x's own library, for immutable concrete x.

    Libraries whose arrays are immutable (JAX) run each operation of an eager call as its
    own compiled kernel, so a composition of a dozen operations pays a dozen dispatches and
    materialises every temporary. For such arrays the library's own ``jit`` (looked up on
    the library already imported, so no framework is named) fuses the whole function. One
    kernel is kept per function, array type and static arguments (axis, temperature, ...),
    which are bound in, so a call passes only ``(x, where)``.

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
_EAGER_KERNELS: dict[tuple[Any, type, tuple[tuple[str, Any], ...]], Kernel] = {}


def compiles_eagerly(x: Array) -> bool:
    """Whether `eager_kernel` compiles for arrays like x: immutable, concrete, with a ``jit``.

    Mutable arrays answer no at once (array-api-compat caches that per type). Nothing is
    cached here for them: a compiler that guards on the globals it reads would compile the
    next call again after a cache filled while it traced.
    """
    if compiling_now(type(x)) or is_writeable_array(x) or not is_array_api_obj(x):
        return False
    if type(x) in _EAGER_TYPES:
        return True
    tracer = tracer_type(x)
    if not callable(getattr(namespace_library(x), "jit", None)) or tracer is None:
        return False
    if isinstance(x, tracer):
        return False
    _EAGER_TYPES.add(type(x))
    return True


_EAGER_TYPES: set[type] = set()


def _compile_for(fn: Callable[..., Array], x: Array, static: dict[str, Any]) -> Kernel:
    def kernel(x: Array, where: Array | None) -> Array:
        return fn(x, where=where, **static)

    compiled: Kernel = namespace_library(x).jit(kernel)
    return compiled
