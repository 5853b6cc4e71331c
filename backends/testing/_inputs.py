"""A check's inputs: the caller's NumPy arrays, their copies on a variant, and comparing results.

NumPy is imported inside the methods: ``import xpsoftmax.testing`` imports no array library.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from xpsoftmax.backends import Variant


class Inputs:
    """The positional and keyword arguments of a check; NumPy arrays among them are the inputs."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        import numpy as np

        self.args = args
        self.kwargs = kwargs
        # Private copies: the caller's arrays are only read, and checked unchanged at the end.
        keyed: list[tuple[int | str, Any]] = [*enumerate(args), *kwargs.items()]
        self.arrays: dict[int | str, np.ndarray] = {
            key: np.array(value, copy=True) for key, value in keyed if isinstance(value, np.ndarray)
        }
        self._names = _parameter_names(fn, len(args))

    def floating_dtype(self) -> str | None:
        """The dtype the result should have: the promoted dtype of the floating inputs."""
        import numpy as np

        floating = [a.dtype for a in self.arrays.values() if np.issubdtype(a.dtype, np.floating)]
        return np.result_type(*floating).name if floating else None

    def run_reference(self, reference: Callable[..., Any], **replaced: Any) -> np.ndarray:
        """`reference` on the inputs, floating arrays in float64, as a float64 (or its own
        non-floating) NumPy array. `replaced` maps input keys to arrays used instead."""
        import numpy as np

        def wide(key: int | str, value: Any) -> Any:
            value = replaced.get(str(key), self.arrays.get(key, value))
            if isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
                return value.astype(np.float64)
            return value

        args = [wide(i, a) for i, a in enumerate(self.args)]
        kwargs = {k: wide(k, a) for k, a in self.kwargs.items()}
        result = np.asarray(reference(*args, **kwargs))
        return result.astype(np.float64) if np.issubdtype(result.dtype, np.floating) else result

    def on(self, v: Variant) -> tuple[list[Any], dict[str, Any]]:
        """The arguments with each input copied to `v`'s library and device (dtype kept)."""
        args = [
            v.asarray(self.arrays[i]) if i in self.arrays else a for i, a in enumerate(self.args)
        ]
        kwargs = {
            k: v.asarray(self.arrays[k]) if k in self.arrays else a for k, a in self.kwargs.items()
        }
        return args, kwargs

    def changed(self, v: Variant, args: list[Any], kwargs: dict[str, Any]) -> str:
        """The name of the first input whose copy on `v` no longer holds the values passed, or
        "" when none changed."""
        import numpy as np

        for key, original in self.arrays.items():
            now = v.to_numpy(args[key] if isinstance(key, int) else kwargs[key])
            if not np.array_equal(now, original, equal_nan=True):
                return self.describe(key)
        return ""

    def describe(self, key: int | str) -> str:
        """How a message names an input: ``x (position 0)`` or ``'mask'``."""
        if isinstance(key, str):
            return repr(key)
        name = self._names[key] if key < len(self._names) else None
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


def compare(got: np.ndarray, expected: np.ndarray, *, rtol: float, atol: float) -> str:
    """Why `got` is not `expected` within ``atol + rtol * |expected|`` (NaNs equal, infinities
    exact), or "" when it is."""
    import numpy as np

    got = np.asarray(got, dtype=np.float64)
    close = np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if close.all():
        return ""
    worst = np.unravel_index(np.argmax(~close), close.shape) if close.ndim else ()
    return (
        f"{int((~close).sum())} of {close.size} entries differ beyond rtol={rtol:.3g}, "
        f"atol={atol:.3g}; at index {tuple(int(i) for i in worst)}: "
        f"got {float(got[worst])!r}, expected {float(expected[worst])!r}"
    )
