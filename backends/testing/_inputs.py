"""A check's inputs: the caller's NumPy arrays, their copies on a variant, and the reference run on
them.

NumPy is imported inside the methods: ``import xpsoftmax.testing`` imports no array library.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant

Key = int | str


class Inputs:
    """The positional and keyword arguments of a check; NumPy arrays among them are the inputs."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        import numpy as np

        self.args = args
        self.kwargs = kwargs
        # Private copies: the caller's arrays are only read, and checked unchanged at the end.
        keyed: list[tuple[Key, Any]] = [*enumerate(args), *kwargs.items()]
        self.arrays: dict[Key, np.ndarray] = {
            key: np.array(value, copy=True) for key, value in keyed if isinstance(value, np.ndarray)
        }
        self._names = _parameter_names(fn, len(args))

    def inexact_dtype(self) -> str | None:
        """The promoted dtype of the floating and complex inputs ("float32", "complex128"), or
        None when there are none."""
        import numpy as np

        inexact = [a.dtype for a in self.arrays.values() if np.issubdtype(a.dtype, np.inexact)]
        return np.result_type(*inexact).name if inexact else None

    def fit(self, v: Variant) -> bool:
        """Whether `v`'s library has every floating dtype of the inputs (array-api-strict has
        no float16)."""
        import numpy as np

        floating = {
            a.dtype.name for a in self.arrays.values() if np.issubdtype(a.dtype, np.floating)
        }
        return floating <= set(v.dtypes())

    def floating_keys(self) -> list[Key]:
        """The keys of the real floating inputs: the ones gradients are taken with respect to."""
        import numpy as np

        return [k for k, a in self.arrays.items() if np.issubdtype(a.dtype, np.floating)]

    def name(self, key: Key) -> str | None:
        """The parameter name of argument `key`, where the signature says it."""
        if isinstance(key, str):
            return key
        return self._names[key] if key < len(self._names) else None

    def run_reference(
        self, reference: Callable[..., Any], *, widen: bool = True, **replaced: Any
    ) -> Any:
        """`reference` on the inputs, as it returns it; with `widen`, floating arrays in float64
        and complex ones in complex128. `replaced` maps input keys (as str) to arrays used
        instead."""
        import numpy as np

        def given(key: Key, value: Any) -> Any:
            value = replaced.get(str(key), self.arrays.get(key, value))
            if widen and isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.inexact):
                wide = np.complex128 if np.iscomplexobj(value) else np.float64
                return value.astype(wide)
            return value

        args = [given(i, a) for i, a in enumerate(self.args)]
        kwargs = {k: given(k, a) for k, a in self.kwargs.items()}
        return reference(*args, **kwargs)

    def on(self, v: Variant, *, dask_chunks: Any = "auto") -> tuple[list[Any], dict[str, Any]]:
        """The arguments with each input copied to `v`'s library and device (dtype kept); on
        Dask in chunks `dask_chunks` (Dask's ``chunks``, or "several": about three chunks along
        every axis)."""

        def copied(key: Key, value: Any) -> Any:
            if key not in self.arrays:
                return value
            a = self.arrays[key]
            if v.backend.name != "dask":
                return v.asarray(a)
            if isinstance(dask_chunks, str) and dask_chunks == "several":
                return v.asarray(a, chunks=tuple(max(1, -(-n // 3)) for n in a.shape))
            return v.asarray(a, chunks=dask_chunks)

        args = [copied(i, a) for i, a in enumerate(self.args)]
        kwargs = {k: copied(k, a) for k, a in self.kwargs.items()}
        return args, kwargs

    def changed(self, v: Variant, args: list[Any], kwargs: dict[str, Any]) -> list[str]:
        """The names of the inputs whose copies on `v` no longer hold the values passed."""
        import numpy as np

        changed = []
        for key, original in self.arrays.items():
            now = v.to_numpy(args[key] if isinstance(key, int) else kwargs[key])
            if now.shape != original.shape or not np.array_equal(now, original, equal_nan=True):
                changed.append(self.describe(key))
        return changed

    def describe(self, key: Key) -> str:
        """How a message names an input: ``x (position 0)`` or ``'mask'``."""
        if isinstance(key, str):
            return repr(key)
        name = self.name(key)
        return f"{name} (position {key})" if name else f"at position {key}"


def _parameter_names(fn: Callable[..., Any], count: int) -> list[str | None]:
    """Names of `fn`'s first `count` positional parameters, where its signature says them."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins and ufuncs may have no signature
        return [None] * count
    names: list[str | None] = []
    for p in parameters:
        if p.kind == p.VAR_POSITIONAL or len(names) == count:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
    return names + [None] * (count - len(names))
