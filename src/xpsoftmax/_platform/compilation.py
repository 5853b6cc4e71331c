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
from .tracing import is_concrete

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

    Kept per array type, written only outside a compiler: a compiler that guards on the
    globals it reads would compile the next call again after a cache filled while it traced.
    """
    array_type = type(x)
    known = _COMPILES_EAGERLY.get(array_type)
    if known is not None:
        return known
    if compiling_now(array_type):
        return False
    # (A NumPy array may be read-only, yet NumPy has no jit: the answer is one per type.)
    answer = (
        not is_writeable_array(x)
        and is_array_api_obj(x)
        and callable(getattr(namespace_library(x), "jit", None))
        and is_concrete(x)
    )
    _COMPILES_EAGERLY[array_type] = answer
    return answer


# The answer per array type (a tracer is a type of its own), written by eager calls only:
# asked first on every call, before anything that a compiler would trace.
_COMPILES_EAGERLY: dict[type, bool] = {}


def _compile_for(fn: Callable[..., Array], x: Array, static: dict[str, Any]) -> Kernel:
    def kernel(x: Array, where: Array | None) -> Array:
        return fn(x, where=where, **static)

    compiled: Kernel = namespace_library(x).jit(kernel)
    return compiled
