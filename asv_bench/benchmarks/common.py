"""What every benchmark shares: variants, sizes, inputs, and each framework's own peer.

One `Case` builds the input and both callables, xpsoftmax's and the native peer's, for a
variant (a backend on a device, eager or compiled: `xpsoftmax.backends.variants`), a function,
a shape and an axis. The asv benchmarks here, the pytest-benchmark suite under
``tests/benchmarks`` and ``docs/scripts/performance_report.py`` all build their cases with it,
so the three measure the same thing.

Peers are the frameworks' own functions, never xpsoftmax: SciPy for NumPy, ``jax.nn`` for JAX,
``torch`` / ``torch.nn.functional`` for PyTorch, ``cupyx.scipy.special`` for CuPy, and the
plain array-API composition (max, subtract, exp, sum, divide) for Dask, which has no softmax.
Jacobian peers are autodiff (``vmap(jacrev(softmax))``) where the framework has it, and the
textbook ``diag(s) - s s^T`` elsewhere. Cross-entropy's JAX peer is optax where installed, else
``jax.nn.log_softmax`` and a gather. Compiled variants compile both sides the same way.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import xpsoftmax
from xpsoftmax import backends

#: Variant ids benchmarked, GPU ones included: they skip, with the reason, where absent.
#: array-api-strict is left out: it is a conformance reference, not something to run fast.
VARIANT_IDS = tuple(v.id for v in backends.all_variants() if v.backend.name != "array_api_strict")
CPU_VARIANT_IDS = VARIANT_IDS[:6]

#: Named shapes: per-call overhead, an LLM vocabulary, a square matrix, one long row.
SIZES = {
    "tiny": (64, 10),
    "vocabulary": (128, 32000),
    "square": (2048, 4096),
    "long_row": (1, 1_000_000),
}
#: The last axis (what fused kernels are tuned for) and a leading one.
AXES = {"last": -1, "leading": 0}
DTYPES = ("float32", "float64", "float16", "bfloat16")
REDUCTIONS = ("softmax", "log_softmax", "logsumexp")
IMPLEMENTATIONS = ("xpsoftmax", "peer")

#: The headline suite (asv ``Headline``, the pytest-benchmark gate): the frameworks people
#: train with, the functions a model calls, one size for per-call cost and one for throughput
#: (4 MiB of float32, a few milliseconds a call, so each benchmark is short).
HEADLINE_VARIANT_IDS = ("numpy", "jax.jit", "torch", "torch.compile")
HEADLINE_FUNCTIONS = ("softmax", "log_softmax", "cross_entropy", "cross_entropy_grad")
HEADLINE_SIZES = {"per_call": (64, 10), "throughput": (256, 4096)}


def headline_left_out(variant_id: str, function: str, size: str) -> str | None:
    """Why a cell of the headline grid is not timed, or None when it is."""
    if variant_id == "numpy" and function == "cross_entropy_grad":
        return "NumPy has no autodiff"
    if variant_id == "torch.compile" and size == "per_call":
        # Measured: equal commits differed by up to 1.3x there, beyond a 10 % factor, and each
        # compilation in a fresh process costs more than all the timing of the process.
        return "torch.compile per call is its guard check: timed at the throughput size only"
    return None


def headline_ids() -> list[str]:
    """Every timed cell of the headline grid, as ``"variant function size"`` (the gate's ids)."""
    return [
        f"{variant_id} {function} {size}"
        for variant_id in HEADLINE_VARIANT_IDS
        for function in HEADLINE_FUNCTIONS
        for size in HEADLINE_SIZES
        if headline_left_out(variant_id, function, size) is None
    ]


def parse_headline_id(case_id: str) -> tuple[str, str, str, str]:
    """The arguments of `headline_case` (xpsoftmax's implementation) for a `headline_ids` id."""
    variant_id, function, size = case_id.split()
    return variant_id, function, "xpsoftmax", size


def compute_on_one_thread() -> None:
    """Compute on one thread in this process: on a busy shared machine a second thread waits
    for a core, and a millisecond call turns into a hundred in one sample or another.

    asv runs each parameter combination in a process of its own, so this changes nothing but
    the benchmark at hand. XLA reads its flags when JAX first computes, so call this first.
    """
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class Unavailable(NotImplementedError):
    """This case cannot run here (missing framework, device or dtype); asv skips it."""


@dataclasses.dataclass
class Case:
    """One measured call: ``run()`` computes and waits for the result."""

    variant: backends.Variant
    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def run(self) -> Any:
        return self.variant.synchronize(self.fn(*self.args))


class XPBenchmark(abc.ABC):
    """Base of the timed benchmarks: ``setup`` builds ``self.case``; ``time_call`` times one call.

    Abstract (``setup`` is), so asv's discovery, which skips abstract classes, does not take this
    base for a benchmark of its own. Subclasses set ``params`` and ``param_names`` and may
    override the timing attributes.
    """

    case: Case
    timeout = 300
    # A handful of samples: the large shapes take tens of milliseconds each.
    number = 0
    repeat = (1, 10, 5.0)

    @abc.abstractmethod
    def setup(self, *params: Any) -> None:
        """Build ``self.case`` for these parameters (raise `Unavailable` to skip)."""

    def time_call(self, *params: Any) -> None:
        self.case.run()


def get_variant(variant_id: str) -> backends.Variant:
    """The variant, or `Unavailable` with the reason it cannot run here.

    (These benchmarks time older commits too, whose registry knows the dashed spellings,
    "jax-jit", alone.)
    """
    try:
        variant = backends.variant(variant_id)
    except KeyError:
        variant = backends.variant(variant_id.replace(".", "-").replace(":", "-"))
    reason = variant.unavailable_reason()
    if reason is not None:
        raise Unavailable(reason)
    return variant


def make_input(
    variant: backends.Variant, shape: tuple[int, ...], dtype: str = "float32", seed: int = 0
) -> Any:
    """Logits of the given shape, spread like a language model's (standard deviation 3)."""
    if dtype not in variant.dtypes():
        raise Unavailable(f"{variant.backend.name} has no {dtype}")
    logits = 3.0 * np.random.default_rng(seed).standard_normal(shape)
    return variant.asarray(logits, dtype=dtype)


def reduction_case(
    variant_id: str,
    function: str,
    implementation: str,
    shape: tuple[int, ...],
    axis: int,
    dtype: str,
) -> Case:
    """softmax, log_softmax or logsumexp along `axis`, by xpsoftmax or the peer."""
    variant = get_variant(variant_id)
    x = make_input(variant, shape, dtype)
    if implementation == "xpsoftmax":
        ours = getattr(xpsoftmax, function)

        def fn(a: Any) -> Any:
            return ours(a, axis=axis)

    else:
        fn = _peer_reduction(variant, function, axis)
    return _compiled_case(variant, fn, (x,))


def jacobian_case(
    variant_id: str, function: str, implementation: str, shape: tuple[int, ...]
) -> Case:
    """softmax_jacobian or softmax_jvp along the last axis."""
    variant = get_variant(variant_id)
    x = make_input(variant, shape)
    if function == "softmax_jacobian":
        fn = (
            xpsoftmax.softmax_jacobian if implementation == "xpsoftmax" else _peer_jacobian(variant)
        )
        return _compiled_case(variant, fn, (x,))
    v = make_input(variant, shape, seed=1)
    fn = xpsoftmax.softmax_jvp if implementation == "xpsoftmax" else _peer_jvp(variant)
    return _compiled_case(variant, fn, (x, v))


def cross_entropy_case(variant_id: str, implementation: str, shape: tuple[int, ...]) -> Case:
    """Mean cross-entropy with integer targets along the last axis."""
    variant = get_variant(variant_id)
    x = make_input(variant, shape)
    labels = np.random.default_rng(2).integers(0, shape[-1], size=shape[:-1])
    target = variant.asarray(labels, dtype="int64")
    if implementation == "xpsoftmax":
        return _compiled_case(variant, xpsoftmax.cross_entropy, (x, target))
    return _compiled_case(variant, _peer_cross_entropy(variant), (x, target))


def cross_entropy_grad_case(variant_id: str, implementation: str, shape: tuple[int, ...]) -> Case:
    """Forward and backward: the gradient of mean cross-entropy with respect to the logits.

    What a training step pays for the loss. JAX differentiates with ``jax.grad`` (compiled with
    the rest for jax.jit); PyTorch runs the (compiled, for torch.compile) loss and then autograd's
    ``backward()``. NumPy and Dask have no autodiff: their cases are `Unavailable`.
    """
    variant = get_variant(variant_id)
    name = variant.backend.name
    if name not in ("jax", "torch"):
        raise Unavailable(f"{name} has no autodiff")
    x = make_input(variant, shape)
    labels = np.random.default_rng(2).integers(0, shape[-1], size=shape[:-1])
    target = variant.asarray(labels, dtype="int64")
    loss = (
        xpsoftmax.cross_entropy if implementation == "xpsoftmax" else _peer_cross_entropy(variant)
    )
    if name == "jax":
        import jax

        return _compiled_case(variant, jax.grad(loss), (x, target))
    compiled_loss = variant.wrap(loss)
    leaf = x.detach().requires_grad_(True)

    def forward_backward(logits: Any, t: Any) -> Any:
        logits.grad = None  # a fresh gradient each call, not one accumulated over calls
        compiled_loss(logits, t).backward()
        return logits.grad

    case = Case(variant, forward_backward, (leaf, target))
    case.run()  # compile (forward and backward graphs) and warm up outside the timing
    return case


def headline_case(variant_id: str, function: str, implementation: str, size: str) -> Case:
    """One cell of the headline suite, along the last axis in float32."""
    reason = headline_left_out(variant_id, function, size)
    if reason is not None:
        raise Unavailable(reason)
    shape = HEADLINE_SIZES[size]
    if function == "cross_entropy":
        return cross_entropy_case(variant_id, implementation, shape)
    if function == "cross_entropy_grad":
        return cross_entropy_grad_case(variant_id, implementation, shape)
    return reduction_case(variant_id, function, implementation, shape, -1, "float32")


def copy_case(variant_id: str, shape: tuple[int, ...], dtype: str = "float32") -> Case:
    """A copy of the input: the memory-bandwidth floor a softmax is measured against."""
    variant = get_variant(variant_id)
    x = make_input(variant, shape, dtype)
    xp = variant.xp
    # Eager on purpose: a compiler may turn a copy into an alias.
    case = Case(variant, lambda a: xp.asarray(a, copy=True), (x,))
    case.run()
    return case


def _compiled_case(
    variant: backends.Variant, fn: Callable[..., Any], args: tuple[Any, ...]
) -> Case:
    case = Case(variant, variant.wrap(fn), args)
    case.run()  # compile and warm up outside the timing
    return case


# -- peers -------------------------------------------------------------------------------------


def _peer_reduction(variant: backends.Variant, function: str, axis: int) -> Callable[[Any], Any]:
    name = variant.backend.name
    if name == "numpy":
        from scipy import special

        scipy_fn = getattr(special, function)
        return lambda a: scipy_fn(a, axis=axis)
    if name == "jax":
        import jax

        jax_fn = getattr(jax.nn, function)
        return lambda a: jax_fn(a, axis=axis)
    if name == "torch":
        import torch

        torch_fn = {"softmax": torch.softmax, "log_softmax": torch.log_softmax}.get(function)
        if torch_fn is None:
            return lambda a: torch.logsumexp(a, dim=axis)
        return lambda a: torch_fn(a, dim=axis)
    if name == "cupy":
        from cupyx.scipy import special as cupy_special

        cupy_fn = getattr(cupy_special, function)
        return lambda a: cupy_fn(a, axis=axis)
    return _composition(variant.xp, function, axis)


def _composition(xp: Any, function: str, axis: int) -> Callable[[Any], Any]:
    """The plain array-API composition, for libraries with no softmax of their own (Dask)."""

    def softmax(a: Any) -> Any:
        e = xp.exp(a - xp.max(a, axis=axis, keepdims=True))
        return e / xp.sum(e, axis=axis, keepdims=True)

    def log_softmax(a: Any) -> Any:
        shifted = a - xp.max(a, axis=axis, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))

    def logsumexp(a: Any) -> Any:
        m = xp.max(a, axis=axis, keepdims=True)
        return xp.squeeze(m + xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)), axis=axis)

    return {"softmax": softmax, "log_softmax": log_softmax, "logsumexp": logsumexp}[function]


def _peer_jacobian(variant: backends.Variant) -> Callable[[Any], Any]:
    name = variant.backend.name
    if name == "jax":
        import jax

        return jax.vmap(jax.jacrev(jax.nn.softmax))
    if name == "torch":
        import torch

        return torch.func.vmap(torch.func.jacrev(lambda row: torch.softmax(row, dim=-1)))
    xp = variant.xp
    softmax = _peer_reduction(variant, "softmax", -1)

    def textbook(a: Any) -> Any:
        s = softmax(a)
        n = a.shape[-1]
        eye = xp.eye(n, dtype=a.dtype)
        return xp.expand_dims(s, axis=-1) * eye - xp.expand_dims(s, axis=-1) * xp.expand_dims(
            s, axis=-2
        )

    return textbook


def _peer_jvp(variant: backends.Variant) -> Callable[[Any, Any], Any]:
    name = variant.backend.name
    if name == "jax":
        import jax

        return lambda a, v: jax.jvp(jax.nn.softmax, (a,), (v,))[1]
    if name == "torch":
        import torch

        return lambda a, v: torch.func.jvp(lambda t: torch.softmax(t, dim=-1), (a,), (v,))[1]
    xp = variant.xp
    softmax = _peer_reduction(variant, "softmax", -1)

    def textbook(a: Any, v: Any) -> Any:
        s = softmax(a)
        return s * (v - xp.sum(s * v, axis=-1, keepdims=True))

    return textbook


def _peer_cross_entropy(variant: backends.Variant) -> Callable[[Any, Any], Any]:
    name = variant.backend.name
    if name == "torch":
        import torch

        return lambda a, t: torch.nn.functional.cross_entropy(a, t)
    if name == "jax":
        import jax

        if importlib.util.find_spec("optax") is not None:
            import optax

            def optax_loss(a: Any, t: Any) -> Any:
                return optax.softmax_cross_entropy_with_integer_labels(a, t).mean()

            return optax_loss

        # Without optax, JAX's own pieces: jax.nn.log_softmax and a gather of the targets.
        def jax_loss(a: Any, t: Any) -> Any:
            log_p = jax.nn.log_softmax(a, axis=-1)
            return -jax.numpy.mean(jax.numpy.take_along_axis(log_p, t[:, None], axis=-1))

        return jax_loss
    xp = variant.xp
    log_softmax = _peer_reduction(variant, "log_softmax", -1)

    def nll(a: Any, t: Any) -> Any:
        # One-hot rather than take_along_axis, which Dask lacks.
        one_hot = xp.expand_dims(t, axis=-1) == xp.arange(a.shape[-1])
        return -xp.mean(xp.sum(xp.where(one_hot, log_softmax(a), 0.0), axis=-1))

    return nll
