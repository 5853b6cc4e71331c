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
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ._base import Axis, Backend
from ._reference import REDUCTIONS, LossOptions

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

    def compile(self, fn: Callable[..., Any], *, static_argnames: Sequence[str] = ()) -> Any:
        """``torch.compile(fn, fullgraph=True)``: a graph break is an error, not a silent fallback.

        `static_argnames` is ignored: TorchDynamo already treats Python ints as constants.
        """
        import torch

        return torch.compile(fn, fullgraph=True)

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
