"""Dask adapter: the lazy, chunked backend.

Dask has no softmax of its own: its reference functions are SciPy's on a host NumPy copy (computing the
graph), converted back into a Dask array with the input's chunks where the shape allows. `asarray` takes
a ``chunks`` option, passed to `dask.array.from_array`, so that tests can split the softmax axis over
several chunks. `synchronize` persists: with the default threaded scheduler `persist` returns once every
chunk is computed; with a `distributed` client it returns at once, so it then waits for the futures.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._base import Backend

if TYPE_CHECKING:
    import numpy as np


class DaskBackend(Backend):
    """dask.array over NumPy chunks on the CPU; references from SciPy on a computed host copy."""

    name = "dask"
    module = "dask"

    def _from_numpy(
        self,
        a: np.ndarray,
        /,
        *,
        dtype: str | None,
        device: str,
        chunks: Any = "auto",
        **options: Any,
    ) -> Any:
        """Wrap `a` with `dask.array.from_array`; ``chunks`` as there ("auto": Dask chooses)."""
        import dask.array as da

        self._reject_options(options)
        return da.from_array(a if dtype is None else a.astype(dtype), chunks=chunks)

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import numpy as np

        computed = x.compute()
        # Chunks held on a GPU (CuPy) come back with .get(); NumPy chunks are already on the host.
        computed = computed.get() if hasattr(computed, "get") else computed
        return np.array(computed, copy=True)

    def device_of(self, x: Any, /) -> str:
        return "cpu"

    def synchronize(self, x: Any, /) -> Any:
        """Compute every chunk of `x` and keep it in memory; use the returned (persisted) array."""
        persisted = x.persist()
        if "distributed" in sys.modules:  # a client can only exist if distributed was imported
            from distributed import futures_of, wait

            futures = futures_of(persisted)
            if futures:
                wait(futures)
        return persisted

    def _from_host(self, result: Any, *, like: Any) -> Any:
        import dask.array as da
        import numpy as np

        result = np.asarray(result)
        chunks = like.chunks if result.shape == like.shape else "auto"
        return da.from_array(result, chunks=chunks)
