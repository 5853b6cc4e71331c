"""Framework adapters: one module per array library, and their registry (``xpsoftmax.backends``).

One small module per array library, each a subclass of `Backend`, and a registry over them. The test
suite, the benchmarks and the command line read this one registry, so they agree on what a backend is,
which devices and dtypes it has, and what its reference functions are. Two rooms sit beside the
adapters: the test harness (``backends/testing``, shipped as `xpsoftmax.testing`) and the command line
(`xpsoftmax.backends.cli`).

Nothing here imports a framework until it is used: ``import xpsoftmax.backends`` is cheap and works with
any subset of the frameworks installed (the same promise array-api-compat makes, and tests). Asking
whether a framework is installed, and listing CPU variants, imports nothing; listing GPU devices imports
the framework, since only it can count them.

Examples
--------
>>> from xpsoftmax import backends
>>> [b.name for b in backends.available()]  # doctest: +SKIP
['numpy', 'array_api_strict', 'jax', 'torch', 'dask']
>>> backends.all_variant_ids()[:5]
['numpy', 'array_api_strict', 'dask', 'jax', 'jax.jit']
"""

from __future__ import annotations

from ._array_api_strict import ArrayApiStrictBackend
from ._base import FLOAT_DTYPES, Backend
from ._cupy import CuPyBackend
from ._dask import DaskBackend
from ._jax import JaxBackend
from ._numpy import NumPyBackend
from ._torch import TorchBackend
from ._variant import Bound, Variant, is_traced
from ._warnings import InternalWarning, ignoring

__all__ = [
    "BACKENDS",
    "FLOAT_DTYPES",
    "Backend",
    "Bound",
    "InternalWarning",
    "Variant",
    "all_variant_ids",
    "all_variants",
    "available",
    "get",
    "ignoring",
    "is_traced",
    "variant",
    "variants",
]

#: Every backend, installed or not, by name.
BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        NumPyBackend(),
        ArrayApiStrictBackend(),
        JaxBackend(),
        TorchBackend(),
        DaskBackend(),
        CuPyBackend(),
    )
}

# The whole matrix, CPU first, in the order tests and benchmarks list it. Only the first GPU of each
# backend is a variant: more GPUs would add ids without testing anything new. The last variant
# came after the GPU ones, so that the ids before it kept their places.
_MATRIX: tuple[tuple[str, str, bool], ...] = (
    ("numpy", "cpu", False),
    ("array_api_strict", "cpu", False),
    ("dask", "cpu", False),
    ("jax", "cpu", False),
    ("jax", "cpu", True),
    ("torch", "cpu", False),
    ("torch", "cpu", True),
    ("cupy", "cuda:0", False),
    ("torch", "cuda:0", False),
    ("torch", "cuda:0", True),
    ("jax", "gpu:0", False),
    ("jax", "gpu:0", True),
    # array-api-strict's own second device: device propagation checked on every machine.
    ("array_api_strict", "device1", False),
)


def get(name: str) -> Backend:
    """The backend called `name` (installed or not); KeyError names the known ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None


def available() -> list[Backend]:
    """The installed backends, in registry order. Imports nothing."""
    return [backend for backend in BACKENDS.values() if backend.is_installed()]


def all_variants() -> list[Variant]:
    """Every variant, runnable here or not, in a fixed order. Imports nothing."""
    return [Variant(BACKENDS[name], device, compiled) for name, device, compiled in _MATRIX]


def all_variant_ids() -> list[str]:
    """Ids of `all_variants`: the same list on every machine."""
    return [v.id for v in all_variants()]


def variants(include_gpu: bool = True) -> list[Variant]:
    """The variants runnable here, in the order of `all_variants`.

    With ``include_gpu=False`` only CPU variants are considered, which imports no framework.
    """
    return [v for v in all_variants() if (include_gpu or v.device == "cpu") and v.available]


def variant(id: str) -> Variant:
    """The variant with this id ("jax.jit"), runnable here or not: check
    `Variant.unavailable_reason`. The dashed spelling of earlier versions ("jax-jit",
    `Variant.dashed_id`) names the same variant.

    Raises
    ------
    KeyError
        If `id` is neither in `all_variant_ids` nor a dashed spelling of one.
    """
    for v in all_variants():
        if id in (v.id, v.dashed_id):
            return v
    raise KeyError(f"unknown variant {id!r}; known: {all_variant_ids()}")
