"""array-api-strict adapter: the proof that only the standard is used.

array-api-strict implements the array API standard and nothing more, so it has no softmax of its own:
its reference functions are SciPy's on a host NumPy copy, converted back (the inherited default). It has
no float16 and no bfloat16. Only its CPU device is offered; its "device1"/"device2" test devices can hold
no data that NumPy could read, so a host reference could not come back from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Backend

if TYPE_CHECKING:
    import numpy as np


class ArrayApiStrictBackend(Backend):
    """array-api-strict on its CPU device; references from SciPy on a host copy."""

    name = "array_api_strict"
    module = "array_api_strict"
    float_dtypes = ("float32", "float64")

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        import array_api_strict as strict

        self._reject_options(options)
        return strict.asarray(a, dtype=None if dtype is None else getattr(strict, dtype))

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import numpy as np

        # DLPack is the standard's interchange; NumPy reads it without a copy, so copy afterwards.
        return np.array(np.from_dlpack(x), copy=True)

    def device_of(self, x: Any, /) -> str:
        return "cpu"
