"""JAX adapter: XLA on CPU or GPU, eager or under `jax.jit`.

The first use of this backend turns on ``jax_enable_x64``: the test matrix needs float64 on JAX, which
JAX otherwise silently narrows to float32. The switch is process-wide, so it is made only once something
asks this backend for arrays, never on import; it does not change the library, which never upcasts.

References are JAX's own `jax.nn.softmax`, `jax.nn.log_softmax` and `jax.nn.logsumexp`; JAX has no
cross-entropy, so `ref_cross_entropy` applies the definition (spec: Cross-entropy) to
`jax.nn.log_softmax`. Jacobians come from ``jax.vmap(jax.jacrev(fn))`` over the flattened batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._base import Axis, Backend
from ._reference import LossOptions, cross_entropy_from_log_probs
from ._warnings import InternalWarning

if TYPE_CHECKING:
    from types import ModuleType

    import numpy as np


class JaxBackend(Backend):
    """JAX on CPU ("cpu") and GPUs ("gpu:0", ...), with float64 enabled; compiles with `jax.jit`."""

    name = "jax"
    module = "jax"
    has_autodiff = True
    float_dtypes = ("float16", "bfloat16", "float32", "float64")
    compile_label = "jit"
    internal_warnings = (
        InternalWarning(
            UserWarning,
            r"An NVIDIA GPU may be present",
            "jax",
            "jax built for the CPU says so once, on a machine with an NVIDIA GPU",
        ),
    )

    def _jax(self) -> ModuleType:
        """Import JAX, enabling float64 once (see the module docstring for why)."""
        import jax

        if not jax.config.read("jax_enable_x64"):
            jax.config.update("jax_enable_x64", True)
        return jax

    def _gpu_devices(self) -> list[str]:
        jax = self._jax()
        try:
            gpus = jax.devices("gpu")
        except RuntimeError:  # JAX raises, rather than returning [], when it has no GPU platform
            return []
        return [f"gpu:{i}" for i in range(len(gpus))]

    def _jax_device(self, device: str) -> Any:
        platform, _, index = device.partition(":")
        return self._jax().devices(platform)[int(index or 0)]

    def _from_numpy(
        self, a: np.ndarray, /, *, dtype: str | None, device: str, **options: Any
    ) -> Any:
        self._reject_options(options)
        jnp = self._jax().numpy
        target_dtype = None if dtype is None else getattr(jnp, dtype)
        # An explicit device commits the array there, so jitted functions run where the data is.
        return jnp.asarray(a, dtype=target_dtype, device=self._jax_device(device))

    def to_numpy(self, x: Any, /) -> np.ndarray:
        import numpy as np

        host = np.array(x, copy=True)
        # JAX's bfloat16 reaches NumPy as ml_dtypes.bfloat16, which NumPy's own functions do not know.
        return host.astype(np.float32) if host.dtype.name == "bfloat16" else host

    def device_of(self, x: Any, /) -> str:
        device = x.device
        if device.platform == "cpu":
            return "cpu"
        return f"gpu:{self._jax().devices('gpu').index(device)}"

    def synchronize(self, x: Any, /) -> Any:
        """Block until `x` (an array or a pytree of arrays) is computed; JAX dispatches asynchronously."""
        return self._jax().block_until_ready(x)

    def compile(
        self, fn: Callable[..., Any], *, static_argnames: Sequence[str] = (), fullgraph: bool = True
    ) -> Any:
        """``jax.jit(fn, static_argnames=...)``: pass axis-like arguments as static. `jax.jit`
        always takes the whole function (`fullgraph` is torch.compile's)."""
        return self._jax().jit(fn, static_argnames=tuple(static_argnames))

    def gradients(
        self,
        scalar_fn: Callable[..., Any],
        arrays: Sequence[Any],
    ) -> list[Any]:
        """`jax.grad` of `scalar_fn` with respect to every argument."""
        grad = self._jax().grad(scalar_fn, argnums=tuple(range(len(arrays))))
        return list(grad(*arrays))

    def ref_softmax(self, x: Any, axis: Axis) -> Any:
        """`jax.nn.softmax`."""
        return self._jax().nn.softmax(x, axis=axis)

    def ref_log_softmax(self, x: Any, axis: Axis) -> Any:
        """`jax.nn.log_softmax`."""
        return self._jax().nn.log_softmax(x, axis=axis)

    def ref_logsumexp(self, x: Any, axis: Axis) -> Any:
        """`jax.nn.logsumexp`."""
        return self._jax().nn.logsumexp(x, axis=axis)

    def _cross_entropy(self, logits: Any, target: Any, options: LossOptions) -> Any:
        """On `jax.nn.log_softmax` (JAX has no cross-entropy of its own; spec: Cross-entropy)."""
        jax = self._jax()
        log_probs = jax.nn.log_softmax(logits, axis=options.axis)
        return cross_entropy_from_log_probs(jax.numpy, log_probs, target, options)

    def _row_jacobians(self, fn: Callable[[Any], Any], rows: Any) -> Any:
        jax = self._jax()
        return jax.vmap(jax.jacrev(fn))(rows)
