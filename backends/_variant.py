"""Test and benchmark variants: a backend on one device, eager or compiled.

The list of variants is fixed, in a fixed order, whatever this machine has: test ids and benchmark
parameters must be identical on every run and every machine, and a variant that cannot run here is
skipped with its `unavailable_reason` rather than left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np

    from ._base import Backend


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run a function: `backend` on `device`, compiled (jit) or eager.

    Examples
    --------
    >>> from xpsoftmax import backends
    >>> v = backends.variant("jax-jit")
    >>> v.id, v.device, v.compiled
    ('jax-jit', 'cpu', True)
    """

    backend: Backend
    device: str
    compiled: bool = False

    @property
    def id(self) -> str:
        """Stable test id: backend name, then the device kind off its default, then the compiler.

        For example "numpy", "jax-jit", "torch-cuda", "torch-cuda-compile", "jax-gpu", "cupy".
        """
        parts = [self.backend.name]
        if self.device != self.backend.default_device:
            parts.append(self.device.partition(":")[0])
        if self.compiled:
            parts.append(self.backend.compile_label or "compiled")
        return "-".join(parts)

    def __str__(self) -> str:
        return self.id

    def unavailable_reason(self) -> str | None:
        """Why this variant cannot run here (a pytest skip reason), or None when it can."""
        if not self.backend.is_installed():
            return f"{self.backend.module} is not installed"
        if not self.backend.has_device(self.device):
            kind = (
                "CUDA" if self.device.startswith("cuda") else self.device.partition(":")[0].upper()
            )
            return f"no {kind} device ({self.backend.name} sees no {self.device})"
        return None

    @property
    def available(self) -> bool:
        """Whether this variant can run here."""
        return self.unavailable_reason() is None

    def wrap(
        self, fn: Callable[..., Any], static_argnames: Sequence[str] = ()
    ) -> Callable[..., Any]:
        """`fn` compiled by the backend when this variant is compiled, else `fn` itself."""
        if not self.compiled:
            return fn
        compiled: Callable[..., Any] = self.backend.compile(fn, static_argnames=static_argnames)
        return compiled

    def asarray(self, a: np.ndarray, /, *, dtype: str | None = None, **options: Any) -> Any:
        """`Backend.asarray` on this variant's device."""
        return self.backend.asarray(a, dtype=dtype, device=self.device, **options)

    def to_numpy(self, x: Any, /) -> np.ndarray:
        """`Backend.to_numpy`."""
        return self.backend.to_numpy(x)

    def synchronize(self, x: Any, /) -> Any:
        """`Backend.synchronize`."""
        return self.backend.synchronize(x)

    def timing(self, elements: int) -> contextlib.AbstractContextManager[None]:
        """`Backend.timing`."""
        return self.backend.timing(elements)

    def dtypes(self) -> tuple[str, ...]:
        """Floating dtype names this variant's backend has on its device."""
        return self.backend.dtypes(self.device)

    @property
    def xp(self) -> ModuleType:
        """The array-api-compat namespace of the backend's arrays."""
        return self.backend.xp
