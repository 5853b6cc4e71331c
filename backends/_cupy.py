"""CuPy adapter: NumPy-like arrays on CUDA devices.

CuPy arrays live only on a GPU, so this backend has no "cpu" device: its devices are "cuda:0", ... and
`default_device` is "cuda:0". On a machine without CuPy or without a CUDA device it reports itself
unavailable (no device) without importing anything that is missing. References are
`cupyx.scipy.special.softmax`, `log_softmax` and `logsumexp` where this CuPy has them, otherwise SciPy on
a host copy copied back to the input's device. CuPy has no bfloat16, no autodiff and no compiler here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Axis, Backend

if TYPE_CHECKING:
    import numpy as np


class CuPyBackend(Backend):
    """CuPy on "cuda:0", ...; references from cupyx.scipy.special, else SciPy on the host."""

    name = "cupy"
    module = "cupy"
    default_device = "cuda:0"

    def devices(self) -> list[str]:
        """The CUDA devices CuPy sees (no "cpu": CuPy arrays live on GPUs); cached."""
        if not self.is_installed():
            return []
        if self._devices is None:
            self._devices = self._gpu_devices()
        return list(self._devices)

    def _gpu_devices(self) -> list[str]:
        try:
            import cupy

            count = cupy.cuda.runtime.getDeviceCount()
        except (ImportError, RuntimeError):  # CUDARuntimeError is a RuntimeError: no driver or GPU
            return []
        return [f"cuda:{i}" for i in range(count)]

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        import cupy

        self._reject_options(options)
        host = a if dtype is None else a.astype(dtype)  # CuPy's dtypes are NumPy's
        with cupy.cuda.Device(int(device.partition(":")[2] or 0)):
            return cupy.asarray(host)

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import cupy

        host: np.ndarray = cupy.asnumpy(x)  # a new host array
        return host

    def device_of(self, x: Any, /) -> str:
        return f"cuda:{x.device.id}"

    def synchronize(self, x: Any, /) -> Any:
        """Wait until all work queued on the device holding `x` is done."""
        x.device.synchronize()
        return x

    def _special(self, name: str) -> Any:
        """``cupyx.scipy.special.<name>`` if this CuPy has it, else None."""
        try:
            from cupyx.scipy import special
        except ImportError:
            return None
        return getattr(special, name, None)

    def _on_device(self, name: str, x: Any, axis: Axis) -> Any:
        fn = self._special(name)
        if fn is None:
            return getattr(super(), f"ref_{name}")(x, axis)  # SciPy on a host copy
        with x.device:
            return fn(x, axis=axis)

    def ref_softmax(self, x: Any, axis: Axis) -> Any:
        """`cupyx.scipy.special.softmax`, else SciPy on a host copy."""
        return self._on_device("softmax", x, axis)

    def ref_log_softmax(self, x: Any, axis: Axis) -> Any:
        """`cupyx.scipy.special.log_softmax`, else SciPy on a host copy."""
        return self._on_device("log_softmax", x, axis)

    def ref_logsumexp(self, x: Any, axis: Axis) -> Any:
        """`cupyx.scipy.special.logsumexp`, else SciPy on a host copy."""
        return self._on_device("logsumexp", x, axis)
