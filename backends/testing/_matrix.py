"""Which variants the toolkit runs: the registry's matrix, under the toolkit's names.

The variants are `xpsoftmax.backends.Variant` objects, the very ones our own test matrix runs
(``tests/conftest.py`` takes them from here), so what we test and what we offer are one list.
Listing CPU variants imports nothing; listing GPU ones imports the installed frameworks that
have GPUs (only they can count their devices), never one that is not installed.
"""

from __future__ import annotations

from collections.abc import Iterable

from xpsoftmax.backends import Variant

from xpsoftmax import backends


def variants(*, include_missing: bool = False) -> list[Variant]:
    """The variants of the matrix that can run here, in a fixed order.

    Each has a `~xpsoftmax.backends.Variant.name` ("numpy", "array_api_strict", "dask", "jax",
    "jax.jit", "torch", "torch.compile", where a GPU is present "cupy", "torch:cuda",
    "torch.compile:cuda", "jax:gpu", "jax.jit:gpu", and "array_api_strict:device1", on the
    second device array-api-strict keeps for testing, which needs no hardware) and the methods
    `~xpsoftmax.backends.Variant.asarray` (a NumPy array into that library),
    `~xpsoftmax.backends.Variant.call` (a function called in the variant's mode: eager,
    `jax.jit`, ``torch.compile(fullgraph=True)``, or lazy on Dask) and
    `~xpsoftmax.backends.Variant.to_numpy` (a result back on the host, computed if lazy).

    Parameters
    ----------
    include_missing : bool, default False
        Also list the variants that cannot run here (a framework not installed, no GPU); their
        `~xpsoftmax.backends.Variant.unavailable_reason` says why. The list is then the same on
        every machine, which is what test parametrisations need.

    Returns
    -------
    list of xpsoftmax.backends.Variant

    Examples
    --------
    >>> import numpy as np
    >>> from xpsoftmax import testing
    >>> names = [v.name for v in testing.variants()]
    >>> names[:2]
    ['numpy', 'array_api_strict']
    >>> numpy_variant = testing.variants()[0]
    >>> numpy_variant.to_numpy(numpy_variant.call(np.add, numpy_variant.asarray(np.ones(2)), 1))
    array([2., 2.])
    """
    every = backends.all_variants()
    return every if include_missing else [v for v in every if v.available]


def select(chosen: Iterable[str | Variant] | None) -> list[Variant]:
    """The runnable variants named in `chosen` (names, as `xpsoftmax.backends.variant` takes
    them, or Variant objects), in matrix order; None means all of them. An unknown name raises ValueError listing the known ones;
    a known one that cannot run here raises ValueError with the reason."""
    runnable = variants()
    if chosen is None:
        return runnable
    picked: list[Variant] = []
    for item in chosen:
        try:
            v = item if isinstance(item, Variant) else backends.variant(item)
        except KeyError:
            known = backends.all_variant_ids()
            raise ValueError(f"variants: unknown variant {item!r}; known: {known}") from None
        reason = v.unavailable_reason()
        if reason is not None:
            raise ValueError(f"variants: {v.name} cannot run here: {reason}")
        picked.append(v)
    return [v for v in runnable if v in picked]
