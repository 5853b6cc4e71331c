"""NumPy adapter: the host baseline.

NumPy has no softmax of its own; its reference functions are SciPy's (`scipy.special.softmax`,
`log_softmax`, `logsumexp`), the inherited default. NumPy is imported inside the methods, like every other
framework, so that importing the registry imports nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Backend

if TYPE_CHECKING:
    import numpy as np


class NumPyBackend(Backend):
    """NumPy on the CPU: eager, no autodiff, no compiler; references from SciPy."""

    name = "numpy"
    module = "numpy"

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        self._reject_options(options)
        return a if dtype is None else a.astype(dtype)

    def to_numpy(self, x: Any, /) -> np.ndarray:
        """A copy of `x`, so that writing to it never changes `x`."""
        import numpy as np

        return np.array(x, copy=True)

    def device_of(self, x: Any, /) -> str:
        return "cpu"
