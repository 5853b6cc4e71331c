"""PyTorch adapter: CPU and CUDA, eager or under ``torch.compile(fullgraph=True)``.

References are PyTorch's own `torch.softmax`, `torch.log_softmax`, `torch.logsumexp` and
`torch.nn.functional.cross_entropy` (class axis moved to position 1, where PyTorch wants it). PyTorch's
softmax takes one dimension only; for a tuple of axes (or None) the reduced axes are moved to the end and
flattened into one, which is the same function. Jacobians come from
``torch.func.vmap(torch.func.jacrev(fn))``; a function with a data-dependent Python branch (allowed
on eager arrays, spec: When a value is known) cannot run under vmap, and is then differentiated one
row at a time.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._base import Axis, Backend
from ._reference import REDUCTIONS, LossOptions
from ._warnings import InternalWarning

if TYPE_CHECKING:
    import numpy as np


#: PyTorch's ``at::internal::GRAIN_SIZE``: smaller elementwise work runs on one thread anyway.
_PARALLEL_GRAIN = 32768


class TorchBackend(Backend):
    """PyTorch on "cpu" and "cuda:0", ...; compiles with ``torch.compile(fn, fullgraph=True)``."""

    name = "torch"
    module = "torch"
    has_autodiff = True
    float_dtypes = ("float16", "bfloat16", "float32", "float64")
    compile_label = "compile"
    internal_warnings = (
        InternalWarning(
            UserWarning,
            r"Dynamo detected a call to a `functools\.lru_cache`-wrapped function",
            "torch",
            "Dynamo notes, once per process and call site, that it traces through the cache of "
            "an lru_cache-wrapped helper (array-api-compat's array_namespace has one): a remark "
            "on its own tracing, whatever the function computes",
        ),
        InternalWarning(
            DeprecationWarning,
            r"`torch\.jit\.script` is deprecated",
            "torch",
            "torch's forward-mode AD and decompositions load through its own deprecated "
            "torch.jit.script",
        ),
        InternalWarning(
            DeprecationWarning,
            r"`torch\.jit\.script_method` is deprecated",
            "torch",
            "inductor's own code still calls the deprecated torch.jit.script_method",
        ),
        InternalWarning(
            DeprecationWarning,
            r"<class '[^']*'> should not be instantiated",
            "torch",
            "torch.compile instantiates each autograd.Function it traces, then warns that it "
            "was (a Function the user's code instantiates is warned about from the user's file)",
        ),
        InternalWarning(
            UserWarning,
            r"torch\.asarray: unspecified requires_grad now defaults",
            "array_api_compat",
            "torch warns when torch.asarray gets a tensor that requires grad and no "
            "requires_grad; array-api-compat's asarray (also the copies SciPy and scikit-learn "
            "vendor) passes none, so any function that calls xp.asarray on its input gets it "
            "while differentiated",
        ),
        InternalWarning(
            UserWarning,
            r"Error detected in \w+\. Traceback of forward call",
            "torch",
            "autograd's anomaly mode, which torch.compile turns on while it traces a backward "
            "pass, says where the forward call of an operation whose gradient failed was; the "
            "failure itself is raised, and is the finding",
        ),
        InternalWarning(
            FutureWarning,
            r"`torch\._prims_common\.check` is deprecated",
            "torch",
            "inductor's lowering of some operations (aten.diagonal) calls torch's own deprecated "
            "check",
        ),
    )

    def _gpu_devices(self) -> list[str]:
        import torch

        if not torch.cuda.is_available():
            return []
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        import torch

        self._reject_options(options)
        target_dtype = None if dtype is None else getattr(torch, dtype)
        return torch.asarray(a, dtype=target_dtype, device=device, copy=True)

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import numpy as np
        import torch

        host = x.detach().to("cpu")
        if host.dtype == torch.bfloat16:  # NumPy has no bfloat16; float32 holds every value exactly
            host = host.to(torch.float32)
        # .numpy() shares memory with a CPU tensor: copy so the result is the caller's own.
        return np.array(host.numpy(force=True), copy=True)

    def device_of(self, x: Any, /) -> str:
        return str(x.device)

    def synchronize(self, x: Any, /) -> Any:
        """Wait for the CUDA device holding `x`; CPU tensors are computed eagerly."""
        import torch

        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return x

    @contextlib.contextmanager
    def timing(self, elements: int) -> Iterator[None]:
        """One intra-op thread for inputs below PyTorch's parallel grain (32768 entries).

        There a call is per-call cost; yet on a busy 2-core machine an operation that hands
        work to a second thread waits for that thread to be scheduled (torch.softmax of 640
        entries once measured 1 ms where it takes 10 us). Both sides run under it.
        """
        import torch

        if elements >= _PARALLEL_GRAIN:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def compile(
        self, fn: Callable[..., Any], *, static_argnames: Sequence[str] = (), fullgraph: bool = True
    ) -> Any:
        """``torch.compile(fn, fullgraph=True)``: a graph break is an error, not a silent fallback
        (with ``fullgraph=False``, torch.compile runs what it cannot trace in Python).

        `static_argnames` is ignored: TorchDynamo already treats Python ints as constants.
        """
        import torch

        return torch.compile(fn, fullgraph=fullgraph)

    def reset_compiled(self) -> None:
        """``torch.compiler.reset()``: Dynamo's caches and recompile counts start from nothing."""
        import torch

        torch.compiler.reset()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """torch.compile's logs kept to the verdicts, unless ``TORCH_TRACE`` or ``TORCH_LOGS``
        asks for them.

        Its structured-trace logger is always at DEBUG and writes whenever it has a handler; a
        test runner that captures logs (pytest) gives it one, and each compile then writes
        dozens of empty DEBUG records into the captured log. Dynamo and inductor also log, at
        WARNING, each graph break they fall back from (``fullgraph=False``) with its whole
        stack; what matters of it is the exception that ``fullgraph=True`` raises instead.
        """
        if os.environ.get("TORCH_TRACE") or os.environ.get("TORCH_LOGS"):
            yield
            return
        trace = logging.getLogger("torch.__trace")
        loggers = [logging.getLogger(name) for name in ("torch._dynamo", "torch._inductor")]
        saved = (trace.disabled, [log.level for log in loggers])
        trace.disabled = True
        for log in loggers:
            log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            trace.disabled = saved[0]
            for log, level in zip(loggers, saved[1], strict=True):
                log.setLevel(level)

    def gradients(
        self,
        scalar_fn: Callable[..., Any],
        arrays: Sequence[Any],
    ) -> list[Any]:
        """``torch.autograd.grad`` of `scalar_fn` at leaves copied from `arrays`.

        An input the value does not depend on (or a value cut from every input) has gradient 0.
        """
        import torch

        leaves = [a.detach().clone().requires_grad_(True) for a in arrays]
        value = scalar_fn(*leaves)
        if not value.requires_grad:
            return [torch.zeros_like(a) for a in leaves]
        found = torch.autograd.grad(value, leaves, allow_unused=True)
        return [torch.zeros_like(a) if g is None else g for a, g in zip(leaves, found, strict=True)]

    def ref_softmax(self, x: Any, axis: Axis) -> Any:
        """`torch.softmax` (axes flattened into one for a tuple or None)."""
        import torch

        return _over_axes(torch.softmax, x, axis)

    def ref_log_softmax(self, x: Any, axis: Axis) -> Any:
        """`torch.log_softmax` (axes flattened into one for a tuple or None)."""
        import torch

        return _over_axes(torch.log_softmax, x, axis)

    def ref_logsumexp(self, x: Any, axis: Axis) -> Any:
        """`torch.logsumexp`, which takes a tuple of dims; None means all of them."""
        import torch

        return torch.logsumexp(x, dim=tuple(range(x.ndim)) if axis is None else axis)

    def _cross_entropy(self, logits: Any, target: Any, options: LossOptions) -> Any:
        """`torch.nn.functional.cross_entropy`, with the class `axis` moved to 1 as PyTorch wants.

        Integer targets become int64 class indices; floating targets are class probabilities,
        laid out like `logits`.
        """
        import torch

        axis, label_smoothing, reduction = options
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        # PyTorch's class axis is 1, or 0 for one unbatched sample.
        class_axis = 1 if logits.ndim >= 2 else 0
        logits = torch.movedim(logits, axis, class_axis)
        if target.dtype.is_floating_point:
            target = torch.movedim(target, axis, class_axis)
        else:
            target = target.to(torch.int64)
        return torch.nn.functional.cross_entropy(
            logits, target, reduction=reduction, label_smoothing=label_smoothing
        )

    def _row_jacobians(self, fn: Callable[[Any], Any], rows: Any) -> Any:
        import torch

        try:
            return torch.func.vmap(torch.func.jacrev(fn))(rows)
        except RuntimeError as err:
            # vmap refuses `.item()` and data-dependent branches with messages starting "vmap:";
            # anything else is a real error in fn.
            if not str(err).startswith("vmap:") or rows.shape[0] == 0:
                raise
        return torch.stack([torch.func.jacrev(fn)(row) for row in rows.unbind(0)])


def _over_axes(fn: Callable[..., Any], x: Any, axis: Axis) -> Any:
    """Apply the one-dimension `fn(x, dim)` over several axes by flattening them into the last one."""
    import torch

    if isinstance(axis, int):
        return fn(x, axis)
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError(f"repeated axis in {axis}")
    ends = tuple(range(x.ndim - len(axes), x.ndim))
    moved = torch.movedim(x, axes, ends)
    kept = tuple(moved.shape[: x.ndim - len(axes)])
    flat = moved.reshape((*kept, math.prod(moved.shape[x.ndim - len(axes) :])))
    return torch.movedim(fn(flat, -1).reshape(moved.shape), ends, axes)
