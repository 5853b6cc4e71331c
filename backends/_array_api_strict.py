"""array-api-strict adapter: the proof that only the standard is used.

array-api-strict implements the array API standard and nothing more, so it has no softmax of its own:
its reference functions are SciPy's on a host NumPy copy, converted back (the inherited default). It has
no float16 and no bfloat16.

Besides its CPU device it offers "device1", one of the test devices array-api-strict keeps for this
purpose: arrays there refuse `numpy.asarray` and refuse to meet arrays of another device, as a GPU's
would, so a function that round-trips through NumPy, or makes an array without the input's device,
fails there on any machine. Results come back to the host through `to_device` to the CPU first.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._base import Backend

if TYPE_CHECKING:
    import numpy as np


#: array-api-strict's name of its default device, and the second device it offers for testing.
_DEVICES = {"cpu": "CPU_DEVICE", "device1": "device1"}


@functools.cache
def _moves_between_devices() -> bool:
    """Whether this array-api-strict's ``to_device`` brings an array from device1 to the CPU:
    2.3 copies it with ``numpy.asarray(..., copy=True)``, which only NumPy 2 takes, so beside
    an older NumPy no result on device1 could be read."""
    import array_api_strict as strict

    on_device1 = strict.asarray([0.0], device=strict.Device(_DEVICES["device1"]))
    try:
        on_device1.to_device(strict.Device(_DEVICES["cpu"]))
    except TypeError:
        return False
    return True


class ArrayApiStrictBackend(Backend):
    """array-api-strict on its CPU device and its test device "device1"; references from SciPy
    on a host copy."""

    name = "array_api_strict"
    module = "array_api_strict"
    float_dtypes = ("float32", "float64")

    def devices(self) -> list[str]:
        """ "cpu" and "device1" (a device of array-api-strict's own, no hardware needed), where
        this array-api-strict can bring an array back from device1 (`_moves_between_devices`)."""
        if not self.is_installed():
            return []
        return list(_DEVICES) if _moves_between_devices() else ["cpu"]

    def missing_device_reason(self, device: str) -> str | None:
        """Why device1 is not offered: this array-api-strict's ``to_device`` needs NumPy 2."""
        if device != "device1" or not self.is_installed() or _moves_between_devices():
            return None
        import array_api_strict as strict
        import numpy as np

        return (
            f"array_api_strict {strict.__version__} cannot bring an array back from device1 "
            f"beside NumPy {np.__version__} (its to_device needs NumPy 2)"
        )

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        import array_api_strict as strict

        self._reject_options(options)
        return strict.asarray(
            a,
            dtype=None if dtype is None else getattr(strict, dtype),
            device=strict.Device(_DEVICES[device]),
        )

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import array_api_strict as strict
        import numpy as np

        # DLPack is the standard's interchange; NumPy reads it without a copy, so copy afterwards.
        host = x.to_device(strict.Device(_DEVICES["cpu"]))
        return np.array(np.from_dlpack(host), copy=True)

    def device_of(self, x: Any, /) -> str:
        import array_api_strict as strict

        for ours, theirs in _DEVICES.items():
            if x.device == strict.Device(theirs):
                return ours
        return repr(x.device)  # a device this adapter does not offer ("device2", ...)
