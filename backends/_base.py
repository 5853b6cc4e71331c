"""The interface every framework adapter implements.

The test matrix, the benchmarks and the command line all iterate over the same six array libraries, most
of them optional. Each adapter is a small subclass of `Backend` that imports its framework only inside its
methods, so ``import xpsoftmax.backends`` costs nothing and works whatever is installed, and asking whether
a framework is installed imports nothing either (`importlib.util.find_spec`).

The ``ref_*`` methods are the framework's *own* implementations, never this library's: they are the
oracle for framework-versus-framework tests. The default implementation here is SciPy on a host NumPy
copy, converted back; it serves NumPy (for which SciPy is the reference) and the libraries that have no
softmax of their own (array-api-strict, Dask). JAX and PyTorch override it with their own functions.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ._reference import LossOptions, cross_entropy_from_log_probs
from ._warnings import InternalWarning

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np

Axis = int | tuple[int, ...] | None

#: Floating dtypes the test matrix knows, narrowest first.
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


class Backend(abc.ABC):
    """One array library: conversion from and to NumPy, devices, compilation and reference functions.

    Subclasses set the class attributes and implement `_from_numpy`, `to_numpy` and `device_of`;
    everything else has a default that fits libraries without autodiff or compilation.

    Examples
    --------
    >>> import numpy as np
    >>> from xpsoftmax import backends
    >>> torch_backend = backends.get("torch")
    >>> x = torch_backend.asarray(np.ones((2, 3)), dtype="bfloat16")  # doctest: +SKIP
    >>> torch_backend.to_numpy(torch_backend.ref_softmax(x, -1)).dtype  # doctest: +SKIP
    dtype('float32')
    """

    #: Registry name, also the first part of test ids.
    name: ClassVar[str]
    #: Top-level import name of the framework.
    module: ClassVar[str]
    #: Whether `ref_jacobian` works (the framework has automatic differentiation).
    has_autodiff: ClassVar[bool] = False
    #: Floating dtypes the framework has, in the order of `FLOAT_DTYPES` (array-api-strict, for one,
    #: has no float16; only JAX and PyTorch have bfloat16).
    float_dtypes: ClassVar[tuple[str, ...]] = ("float16", "float32", "float64")
    #: Device that `asarray` uses when none is given.
    default_device: ClassVar[str] = "cpu"
    #: Suffix of the compiled variant's id ("jit", "compile"); None when `compile` is the identity.
    compile_label: ClassVar[str | None] = None
    #: Warnings the framework raises about its own workings, whatever the code it runs, each
    #: with its reason: `Variant.call` does not show them, and `xpsoftmax.testing` forgives them.
    internal_warnings: ClassVar[tuple[InternalWarning, ...]] = ()

    def __init__(self) -> None:
        self._devices: list[str] | None = None
        self._xp: ModuleType | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- availability ------------------------------------------------------------------------------

    def is_installed(self) -> bool:
        """Whether the framework can be imported, found without importing it."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except (ImportError, ValueError):  # a broken install, or a module stub without __spec__
            return False

    def devices(self) -> list[str]:
        """Devices usable here: ``"cpu"`` first, then GPUs; empty when not installed.

        The answer is cached: device counts do not change while a process runs.
        """
        if not self.is_installed():
            return []
        if self._devices is None:
            self._devices = ["cpu", *self._gpu_devices()]
        return list(self._devices)

    def has_device(self, device: str) -> bool:
        """Whether `device` is usable; asking for ``"cpu"`` imports nothing."""
        if device == "cpu" and self.default_device == "cpu":
            return self.is_installed()
        return device in self.devices()

    def missing_device_reason(self, device: str) -> str | None:
        """Why `device`, which this framework may offer, is not usable here, where the reason is
        more than the device being absent (a version that cannot use it); None otherwise."""
        return None

    def dtypes(self, device: str | None = None) -> tuple[str, ...]:
        """Floating dtype names, among `FLOAT_DTYPES`, that the framework has on `device`."""
        self._check_device(device or self.default_device)
        return self.float_dtypes

    @property
    def has_bfloat16(self) -> bool:
        """Whether the framework has a bfloat16 dtype."""
        return "bfloat16" in self.float_dtypes

    @property
    def xp(self) -> ModuleType:
        """The array-api-compat namespace of this framework's arrays."""
        if self._xp is None:
            import array_api_compat
            import numpy as np

            probe = self.asarray(np.zeros(1, dtype=np.float32))
            self._xp = array_api_compat.array_namespace(probe)
        return self._xp

    # -- conversion --------------------------------------------------------------------------------

    def asarray(
        self,
        a: np.ndarray,
        /,
        *,
        dtype: str | None = None,
        device: str | None = None,
        **options: Any,
    ) -> Any:
        """Copy a NumPy array into a new framework array.

        Parameters
        ----------
        a : numpy.ndarray
            Host data; never aliased by the result.
        dtype : str, optional
            A dtype name ("float32", "bfloat16", "int64", "bool", ...). None keeps ``a.dtype``, so
            boolean and integer arrays stay boolean and integer.
        device : str, optional
            One of `devices`; None means `default_device`.
        **options
            Backend-specific options (Dask: ``chunks``). Unknown options raise TypeError.

        Returns
        -------
        array
            The framework's array.
        """
        import numpy as np

        device = device or self.default_device
        self._check_device(device)
        if dtype in FLOAT_DTYPES and dtype not in self.float_dtypes:
            raise ValueError(f"{self.name} has no {dtype} dtype; it has {self.float_dtypes}")
        # A contiguous private copy: the result never shares memory with the caller's array.
        host = np.array(a, copy=True, order="C")
        return self._from_numpy(host, dtype=dtype, device=device, **options)

    @abc.abstractmethod
    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        """Make a framework array from a private contiguous copy `a` (validated arguments)."""

    @abc.abstractmethod
    def to_numpy(self, x: Any, /) -> np.ndarray:
        """Copy `x` to a new host NumPy array; bfloat16 becomes float32 (NumPy has no bfloat16)."""

    @abc.abstractmethod
    def device_of(self, x: Any, /) -> str:
        """The device name, as in `devices`, that holds `x`."""

    def synchronize(self, x: Any, /) -> Any:
        """Wait until `x` is computed and return it; eager host libraries have nothing to wait for."""
        return x

    def compile(
        self, fn: Callable[..., Any], *, static_argnames: Sequence[str] = (), fullgraph: bool = True
    ) -> Any:
        """Compile `fn` for this framework; the identity where there is no compiler.

        `fullgraph` is ``torch.compile``'s: False lets it fall back to Python where it cannot
        trace. Other compilers always take the whole function.
        """
        return fn

    def reset_compiled(self) -> None:
        """Forget every function compiled so far (caches, recompile counts); nothing by default.

        The next call of a compiled function compiles it afresh, as in a new process.
        """
        return  # a library without a compiler keeps no compiled state

    def quiet(self) -> contextlib.AbstractContextManager[None]:
        """A context to call the framework under that keeps its logs to itself: nothing by default."""
        return contextlib.nullcontext()

    def gradients(
        self,
        scalar_fn: Callable[..., Any],
        arrays: Sequence[Any],
    ) -> list[Any]:
        """The gradient of ``scalar_fn(*arrays)`` (a 0-d array) with respect to each of `arrays`,
        by the framework's autodiff, as users take it (`jax.grad`, ``backward``); a compiled
        function inside `scalar_fn` is differentiated as compiled."""
        raise NotImplementedError(
            f"{self.name} has no automatic differentiation; check Backend.has_autodiff first"
        )

    def timing(self, elements: int) -> contextlib.AbstractContextManager[None]:
        """A context to time calls on inputs of `elements` entries under: nothing by default."""
        return contextlib.nullcontext()

    # -- reference functions -----------------------------------------------------------------------

    def ref_softmax(self, x: Any, axis: Axis) -> Any:
        """The framework's own softmax (here: `scipy.special.softmax` on a host copy)."""
        from scipy import special

        return self._from_host(special.softmax(self.to_numpy(x), axis=axis), like=x)

    def ref_log_softmax(self, x: Any, axis: Axis) -> Any:
        """The framework's own log_softmax (here: `scipy.special.log_softmax` on a host copy)."""
        from scipy import special

        return self._from_host(special.log_softmax(self.to_numpy(x), axis=axis), like=x)

    def ref_logsumexp(self, x: Any, axis: Axis) -> Any:
        """The framework's own logsumexp (here: `scipy.special.logsumexp` on a host copy)."""
        from scipy import special

        return self._from_host(special.logsumexp(self.to_numpy(x), axis=axis), like=x)

    def ref_cross_entropy(
        self,
        logits: Any,
        target: Any,
        *,
        axis: int = -1,
        label_smoothing: float = 0.0,
        reduction: str = "mean",
    ) -> Any:
        """Cross-entropy (spec: Cross-entropy) by the framework's own means (`_cross_entropy`).

        `target` holds integer class indices (the shape of `logits` without `axis`) or class
        probabilities (the shape of `logits`).
        """
        return self._cross_entropy(logits, target, LossOptions(axis, label_smoothing, reduction))

    def _cross_entropy(self, logits: Any, target: Any, options: LossOptions) -> Any:
        """`ref_cross_entropy`; here on `scipy.special.log_softmax` of a host copy."""
        import numpy as np
        from scipy import special

        log_probs = special.log_softmax(self.to_numpy(logits), axis=options.axis)
        loss = cross_entropy_from_log_probs(np, log_probs, self.to_numpy(target), options)
        return self._from_host(loss, like=logits)

    def ref_jacobian(self, fn: Callable[[Any], Any], x: Any) -> Any:
        """Jacobian of `fn`, applied along the last axis of `x`, by the framework's autodiff.

        Parameters
        ----------
        fn : callable
            Maps one vector of length n (a framework array) to a vector of length m.
        x : array
            Shape ``(*batch, n)``; each vector along the last axis is differentiated separately.

        Returns
        -------
        array
            Shape ``(*batch, m, n)``: ``J[..., i, j] = d fn(x[...])_i / d x[..., j]``.
        """
        if not self.has_autodiff:
            raise NotImplementedError(
                f"{self.name} has no automatic differentiation; check Backend.has_autodiff "
                "before calling ref_jacobian"
            )
        if x.ndim == 0:
            raise ValueError("ref_jacobian needs x with at least one axis")
        batch, n = tuple(x.shape[:-1]), x.shape[-1]
        jac = self._row_jacobians(fn, x.reshape((math.prod(batch), n)))
        return jac.reshape((*batch, *jac.shape[1:]))

    def _row_jacobians(self, fn: Callable[[Any], Any], rows: Any) -> Any:
        """Jacobians of `fn` at each row of the 2-D `rows`, stacked: shape (B, m, n)."""
        raise NotImplementedError  # only reached by backends with has_autodiff = True

    # -- helpers for subclasses --------------------------------------------------------------------

    def _check_device(self, device: str) -> None:
        if not self.has_device(device):
            known = self.devices()
            raise ValueError(
                f"device {device!r} is not available to {self.name} here; available: {known}"
                if known
                else f"{self.name} is not usable here ({self.module!r} is not installed or sees no device)"
            )

    def _reject_options(self, options: dict[str, Any]) -> None:
        """Refuse options meant for another backend rather than silently ignore them."""
        if options:
            raise TypeError(f"{self.name}.asarray takes no options, got {sorted(options)}")

    def _gpu_devices(self) -> list[str]:
        """GPU device names, e.g. ``["cuda:0"]``; called once, by `devices`."""
        return []

    def _from_host(self, result: Any, *, like: Any) -> Any:
        """Bring a host reference result back as a framework array on the device of `like`."""
        import numpy as np

        return self.asarray(np.asarray(result), device=self.device_of(like))
