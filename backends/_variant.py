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

from ._warnings import ignoring

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
            reason = self.backend.missing_device_reason(self.device)
            if reason is not None:
                return reason
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
        self, fn: Callable[..., Any], static_argnames: Sequence[str] = (), *, fullgraph: bool = True
    ) -> Callable[..., Any]:
        """`fn` compiled by the backend when this variant is compiled, else `fn` itself."""
        if not self.compiled:
            return fn
        compiled: Callable[..., Any] = self.backend.compile(
            fn, static_argnames=static_argnames, fullgraph=fullgraph
        )
        return compiled

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in this variant's mode: compiled for a compiled variant.

        The framework's arrays among `args` and `kwargs` are the compiled function's traced
        arguments; everything else (axes, Python numbers, strings, NumPy arrays) is closed over as
        a constant, as `jax.jit` needs
        static axes and as ``torch.compile`` specialises on Python numbers anyway. A compiled
        function is kept and reused for the same `fn` and constants. Eager variants call `fn`
        directly (lazy ones, Dask, then return a lazy result). The framework's warnings about
        its own workings (`Backend.internal_warnings`) are not shown.
        """
        __tracebackhide__ = True  # pytest shows the caller's frames and fn's, not these
        with self.backend.quiet(), ignoring(self.backend.internal_warnings):
            if not self.compiled:
                return fn(*args, **kwargs)
            bound, traced_args = Bound.of(fn, args, kwargs, traced=lambda _, a: is_traced(a))
            key = (self.id, fn, bound.key)
            compiled = _COMPILED.get(key) if _hashable(key) else None
            if compiled is None:
                compiled = self.wrap(bound.with_constants)
                if _hashable(key):
                    _COMPILED[key] = compiled
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


def is_traced(a: Any) -> bool:
    """Whether `Variant.call` passes `a` to a compiled function as a traced argument: the
    framework's arrays are; a NumPy array, like any other value, is closed over as a constant."""
    import array_api_compat

    return array_api_compat.is_array_api_obj(a) and not array_api_compat.is_numpy_array(a)


@dataclasses.dataclass(frozen=True)
class Bound:
    """A call ``fn(*args, **kwargs)`` whose traced arguments are left out: it holds `fn` and the
    constants only (a compiled function kept for reuse keeps no array alive), and
    ``with_constants(*traced)`` makes the call."""

    fn: Callable[..., Any]
    count: int
    constants: tuple[tuple[int, Any], ...]
    named_constants: tuple[tuple[str, Any], ...]
    traced_positions: tuple[int, ...]
    traced_names: tuple[str, ...]

    @classmethod
    def of(
        cls,
        fn: Callable[..., Any],
        args: Sequence[Any],
        kwargs: dict[str, Any],
        *,
        traced: Callable[[int | str, Any], bool],
    ) -> tuple[Bound, list[Any]]:
        """The call, with the arguments `traced` (given position or name, and value) says are
        traced left out, and those arguments (positional ones first, in the order
        `with_constants` takes them)."""
        positions = tuple(i for i, a in enumerate(args) if traced(i, a))
        names = tuple(k for k, a in kwargs.items() if traced(k, a))
        bound = cls(
            fn,
            len(args),
            tuple((i, a) for i, a in enumerate(args) if i not in positions),
            tuple((k, a) for k, a in kwargs.items() if k not in names),
            positions,
            names,
        )
        return bound, [args[i] for i in positions] + [kwargs[k] for k in names]

    @property
    def key(self) -> Hashable:
        """What a compiled `with_constants` depends on besides `fn`: where the traced arguments
        go, and the constants with their types (1, 1.0 and True are equal as keys but compile
        to different programs)."""
        return (
            self.count,
            self.traced_positions,
            self.traced_names,
            tuple((i, type(a), a) for i, a in self.constants),
            tuple((k, type(a), a) for k, a in self.named_constants),
        )

    def with_constants(self, *arrays: Any) -> Any:
        """``fn`` called with `arrays` in the traced places and the constants elsewhere."""
        split = len(self.traced_positions)
        positional = dict(self.constants)
        positional.update(zip(self.traced_positions, arrays[:split], strict=True))
        named = dict(self.named_constants)
        named.update(zip(self.traced_names, arrays[split:], strict=True))
        return self.fn(*(positional[i] for i in range(self.count)), **named)


#: Compiled functions of `Variant.call`, by variant, function, traced positions and constants:
#: compiling costs seconds, and a function is called with the same constants again and again.
_COMPILED: dict[Hashable, Callable[..., Any]] = {}


def _hashable(key: object) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True
