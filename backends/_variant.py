"""Test and benchmark variants: a backend on one device, eager or compiled.

The list of variants is fixed, in a fixed order, whatever this machine has: test ids and benchmark
parameters must be identical on every run and every machine, and a variant that cannot run here is
skipped with its `unavailable_reason` rather than left out.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Hashable, Sequence
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
    >>> v = backends.variant("jax.jit")
    >>> v.id, v.device, v.compiled
    ('jax.jit', 'cpu', True)
    >>> backends.variant("jax-jit") == v  # the spelling of earlier versions
    True
    """

    backend: Backend
    device: str
    compiled: bool = False

    @property
    def id(self) -> str:
        """The variant's one name: the backend, its compiler, then the device kind off its default.

        For example "numpy", "jax.jit", "torch.compile", "torch:cuda", "torch.compile:cuda",
        "jax:gpu", "cupy": the names of the frameworks' own calls. The command line, the test
        toolkit, the test ids, the benchmarks and the docs all use it; `variant` also accepts
        the dashed spelling of earlier versions (`dashed_id`).
        """
        name = self.backend.name
        if self.compiled:
            name += "." + (self.backend.compile_label or "compiled")
        if self.device != self.backend.default_device:
            name += ":" + self.device.partition(":")[0]
        return name

    @property
    def name(self) -> str:
        """The same as `id`, under the name `xpsoftmax.testing` has always used."""
        return self.id

    @property
    def dashed_id(self) -> str:
        """The spelling of `id` before the names were one: "jax-jit", "torch-cuda-compile".

        Kept so that commands and scripts written for it still run; nothing prints it.
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

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in this variant's mode: compiled for a compiled variant.

        The framework's arrays among `args` and `kwargs` are the compiled function's traced
        arguments; everything else (axes, Python numbers, strings, NumPy arrays) is closed over as
        a constant, as `jax.jit` needs
        static axes and as ``torch.compile`` specialises on Python numbers anyway. A compiled
        function is kept and reused for the same `fn` and constants. Eager variants call `fn`
        directly (lazy ones, Dask, then return a lazy result).
        """
        if not self.compiled:
            return fn(*args, **kwargs)
        import array_api_compat

        def traced(a: Any) -> bool:
            # The framework's arrays; a NumPy array stays a constant of the compiled function.
            return array_api_compat.is_array_api_obj(a) and not array_api_compat.is_numpy_array(a)

        traced_positions = tuple(i for i, a in enumerate(args) if traced(a))
        traced_names = tuple(k for k, a in kwargs.items() if traced(a))
        constants = tuple((i, a) for i, a in enumerate(args) if i not in traced_positions)
        named_constants = tuple((k, a) for k, a in kwargs.items() if k not in traced_names)
        # Types too: 1, 1.0 and True are equal as keys but compile to different programs.
        key = (
            self.id,
            fn,
            len(args),
            traced_positions,
            traced_names,
            tuple((i, type(a), a) for i, a in constants),
            tuple((k, type(a), a) for k, a in named_constants),
        )
        compiled = _COMPILED.get(key) if _hashable(key) else None
        if compiled is None:

            def with_constants(*arrays: Any) -> Any:
                split = len(traced_positions)
                positional = dict(constants)
                positional.update(zip(traced_positions, arrays[:split], strict=True))
                named = dict(named_constants)
                named.update(zip(traced_names, arrays[split:], strict=True))
                return fn(*(positional[i] for i in range(len(args))), **named)

            compiled = self.wrap(with_constants)
            if _hashable(key):
                _COMPILED[key] = compiled
        traced_args = [args[i] for i in traced_positions] + [kwargs[k] for k in traced_names]
        return compiled(*traced_args)

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


#: Compiled functions of `Variant.call`, by variant, function, traced positions and constants:
#: compiling costs seconds, and a function is called with the same constants again and again.
_COMPILED: dict[Hashable, Callable[..., Any]] = {}


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
