"""linear_cross_entropy cases: a classifier head's loss and gradients, and the memory it takes.

Shared by the asv ``LinearCrossEntropy`` benchmarks (``bench_linear_cross_entropy.py``), the
pytest-benchmark suite (``tests/benchmarks/test_linear_cross_entropy_speed.py``) and
``docs/scripts/large_vocabularies_report.py``, so that the three measure the same thing.

One case is the mean cross-entropy of ``hidden @ linear_weight.T`` (hidden (N, D), weight
(V, D), class-index targets) along one *path*, by one *implementation* on one *framework*.
The paths (`PATHS`):

* ``train``: the loss and its gradients with respect to ``hidden`` and the weight;
* ``ignored``: the same with every other target ``ignore_index`` (-100);
* ``forward``: the loss alone, nothing recording gradients (plain evaluation);
* ``per-token``: xpsoftmax's loss per token (``reduction="none"``) averaged, and its
  gradients: the rule that keeps a logsumexp and recomputes the logits in the backward pass;
* ``filtered``: ``train`` with gradient filtering, ``filter_eps="auto"``.

The implementations:

* ``xpsoftmax``: ``xpsoftmax.linear_cross_entropy`` under the framework's autodiff, or
  ``xpsoftmax.linear_cross_entropy_vjp`` on NumPy, which has none;
* ``reference``: the materialised logits: ``F.cross_entropy(h @ W.T, y)`` (PyTorch, eager or
  compiled), ``jit(value_and_grad)`` of optax's ``softmax_cross_entropy_with_integer_labels(h @
  W.T, y)`` (JAX; ignored targets masked out of its mean), and on NumPy the matmul,
  ``xpsoftmax.cross_entropy`` and its gradient written out (``softmax - one_hot``, two matmuls);
* ``chunked``: PyTorch 2.13's ``F.linear_cross_entropy(h, W, y,
  options=LinearCrossEntropyOptions())`` (PyTorch eager only).

The peers have the paths ``train``, ``ignored`` and ``forward``; the other two are xpsoftmax's,
beside the peers' ``train``.

**Loss memory** is the peak memory above the inputs and their gradients, which every method
must hold: what a chunked loss saves. `loss_memory` measures it in a fresh Python process per
case, from the process's resident-set high-water mark (Linux ``VmHWM``, reset through
``/proc/self/clear_refs`` once the case is built, compiled and run once). The process starts
with glibc's mmap threshold fixed at 64 KiB, so every large array is its own mapping, returned
to the system when freed: the high-water mark then follows the arrays alive, not what the
allocator keeps cached. `xla_temp_bytes` gives JAX's own figure, ``memory_analysis()``'s
temporary bytes of the compiled step.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xpsoftmax

#: (tokens, D, V): a GPT-2 head (the issue's target case), a small one for quick runs, and a
#: tiny one for the tests.
SIZES = {"gpt2": (4096, 768, 50257), "small": (512, 128, 8192)}
TEST_SIZE = (128, 64, 512)
#: The implementations each framework has (see the module docstring).
METHODS = {
    "torch": ("xpsoftmax", "reference", "chunked"),
    "torch.compile": ("xpsoftmax", "reference"),
    "jax": ("xpsoftmax", "reference"),
    "numpy": ("xpsoftmax", "reference"),
}
FRAMEWORKS = tuple(METHODS)
IMPLEMENTATIONS = ("xpsoftmax", "reference", "chunked")
#: The paths (see the module docstring); the peers have the first three.
PATHS = ("train", "ignored", "forward", "per-token", "filtered")
PEER_PATHS = PATHS[:3]
#: The target that marks an ignored token.
IGNORED = -100
Step = Callable[[], Any]


class Unavailable(NotImplementedError):
    """The case cannot run here (framework missing, or no such implementation for it)."""


def inputs(
    tokens: int, d: int, v: int, dtype: str = "float32", seed: int = 0, path: str = "train"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """hidden (tokens, D), weight (V, D) and targets, scaled so that logits spread about 1;
    on the ``ignored`` path every other target is `IGNORED`."""
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((tokens, d)).astype(dtype)
    weight = (rng.standard_normal((v, d)) / np.sqrt(d)).astype(dtype)
    target = rng.integers(0, v, size=tokens)
    if path == "ignored":
        target[1::2] = IGNORED
    return hidden, weight, target


def best_times(runs: dict[str, Step], rounds: int) -> dict[str, float]:
    """The best time of each run over `rounds` interleaved rounds (each round runs each once),
    so that a change in the machine's load reaches every run alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def available(framework: str, implementation: str, path: str) -> bool:
    """Whether the framework has the implementation, and the implementation the path."""
    if implementation not in METHODS.get(framework, ()) or path not in PATHS:
        return False
    return implementation == "xpsoftmax" or path in PEER_PATHS


def _ours(path: str, chunk_size: int | None) -> Callable[..., Any]:
    """xpsoftmax's loss along `path` (a function of hidden, weight, target)."""
    options: dict[str, Any] = {"chunk_size": chunk_size}
    if path == "ignored":
        options["ignore_index"] = IGNORED
    if path == "filtered":
        options["filter_eps"] = "auto"
    loss = functools.partial(xpsoftmax.linear_cross_entropy, **options)
    if path != "per-token":
        return loss

    def averaged(a: Any, b: Any, t: Any) -> Any:
        return loss(a, b, t, reduction="none").mean()

    return averaged


def make(
    framework: str,
    implementation: str,
    size: str | tuple[int, int, int],
    dtype: str = "float32",
    chunk_size: int | None = None,
    path: str = "train",
) -> Step:
    """A no-argument callable: one loss and its gradients ``(loss, d_hidden, d_weight)`` (the
    loss alone, ``(loss,)``, on the ``forward`` path), computed and waited for. Built,
    compiled and run once before it is returned. `chunk_size` goes to xpsoftmax's functions
    (None: chosen from the shapes)."""
    if not available(framework, implementation, path):
        raise Unavailable(f"{framework} has no {implementation} case on the {path} path")
    shape = SIZES[size] if isinstance(size, str) else size
    hidden, weight, target = inputs(*shape, dtype=dtype, path=path)
    builders = {"torch": _torch, "torch.compile": _torch, "jax": _jax, "numpy": _numpy}
    try:
        run = builders[framework](
            framework, implementation, hidden, weight, target, chunk_size, path
        )
    except ImportError as error:
        raise Unavailable(f"{framework} is not installed: {error}") from None
    run()  # compile, warm up and allocate outside any measurement
    return run


def _torch(
    framework: str,
    implementation: str,
    h: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    chunk_size: int | None = None,
    path: str = "train",
) -> Step:
    import torch
    import torch.nn.functional as F

    gradients = path != "forward"
    hidden = torch.tensor(h, requires_grad=gradients)
    weight = torch.tensor(w, requires_grad=gradients)
    target = torch.tensor(y)

    def reference(a: Any, b: Any, t: Any) -> Any:
        return F.cross_entropy(a @ b.T, t, ignore_index=IGNORED)

    def chunked(a: Any, b: Any, t: Any) -> Any:
        options = torch.nn.LinearCrossEntropyOptions()
        return F.linear_cross_entropy(a, b, t, ignore_index=IGNORED, options=options)

    if implementation == "xpsoftmax":
        loss_fn = _ours(path, chunk_size)
    else:
        loss_fn = reference if implementation == "reference" else chunked
    if framework == "torch.compile":
        if implementation == "xpsoftmax":
            # One eager call first, as any program makes before its compiled step: with torch
            # imported after xpsoftmax, a process whose very first call is compiled gets the
            # blocks' composition differentiated instead of the rule (docs: Frameworks).
            tiny = torch.ones(1, 1, requires_grad=True)
            xpsoftmax.linear_cross_entropy(tiny, torch.ones(1, 1), torch.zeros(1, dtype=int))
        loss_fn = torch.compile(loss_fn, fullgraph=True)

    def step() -> Any:
        loss = loss_fn(hidden, weight, target)
        if not gradients:
            return (loss,)
        d_hidden, d_weight = torch.autograd.grad(loss, (hidden, weight))
        return loss.detach(), d_hidden, d_weight

    return step


def _jax_step(implementation: str, chunk_size: int | None = None, path: str = "train") -> Any:
    import jax

    if implementation == "xpsoftmax":
        loss_fn = _ours(path, chunk_size)
    else:
        import jax.numpy as jnp
        import optax

        def loss_fn(a: Any, b: Any, t: Any) -> Any:
            counted = t != IGNORED
            per_token = optax.softmax_cross_entropy_with_integer_labels(
                a @ b.T, jnp.where(counted, t, 0)
            )
            if path != "ignored":
                return per_token.mean()
            return jnp.sum(jnp.where(counted, per_token, 0.0)) / jnp.sum(counted)

    if path == "forward":
        return jax.jit(loss_fn)
    return jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))


def _jax(
    framework: str,
    implementation: str,
    h: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    chunk_size: int | None = None,
    path: str = "train",
) -> Step:
    import jax
    import jax.numpy as jnp

    if h.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    arrays = (jnp.asarray(h), jnp.asarray(w), jnp.asarray(y))
    compiled = _jax_step(implementation, chunk_size, path)

    def step() -> Any:
        result = jax.block_until_ready(compiled(*arrays))
        if path == "forward":
            return (result,)
        loss, (d_hidden, d_weight) = result
        return loss, d_hidden, d_weight

    return step


def xla_temp_bytes(
    implementation: str, size: str | tuple[int, int, int], path: str = "train"
) -> int:
    """XLA's temporary bytes for the compiled JAX step (``memory_analysis()``): what it allocates
    beyond the arguments and the outputs (loss and gradients)."""
    import jax.numpy as jnp

    shape = SIZES[size] if isinstance(size, str) else size
    arrays = [jnp.asarray(a) for a in inputs(*shape, path=path)]
    compiled = _jax_step(implementation, path=path).lower(*arrays).compile()
    return int(compiled.memory_analysis().temp_size_in_bytes)


def _numpy(
    framework: str,
    implementation: str,
    h: np.ndarray,
    w: np.ndarray,
    y: np.ndarray,
    chunk_size: int | None = None,
    path: str = "train",
) -> Step:
    one = np.asarray(1.0, dtype=h.dtype)
    ours = _ours(path, chunk_size)
    if implementation == "xpsoftmax":
        if path == "forward":
            return lambda: (ours(h, w, y),)
        options: dict[str, Any] = {"chunk_size": chunk_size}
        if path == "ignored":
            options["ignore_index"] = IGNORED
        if path == "filtered":
            options["filter_eps"] = "auto"
        reduction = "none" if path == "per-token" else "mean"
        g = np.full(len(y), 1.0 / len(y), dtype=h.dtype) if reduction == "none" else one

        def vjp() -> Any:
            loss, d_hidden, d_weight, _ = xpsoftmax.linear_cross_entropy_vjp(
                h, w, y, g, reduction=reduction, **options
            )
            return (loss if reduction == "mean" else np.mean(loss)), d_hidden, d_weight

        return vjp

    counted = y != IGNORED
    rows, labels = np.nonzero(counted)[0], y[counted]
    if path == "forward":
        return lambda: (xpsoftmax.cross_entropy(h @ w.T, y),)

    def reference() -> Any:
        logits = h @ w.T
        loss = xpsoftmax.cross_entropy(logits, y, ignore_index=IGNORED)
        # d loss / d logits = (softmax - one_hot) / N, built in place in the softmax's array.
        d_logits = xpsoftmax.softmax(logits)
        del logits
        d_logits[rows, labels] -= 1.0
        d_logits[~counted] = 0.0
        d_logits /= len(labels)
        return loss, d_logits @ w, d_logits.T @ h

    return reference


# -- loss memory, in a fresh process per case ---------------------------------------------------


def _status_bytes(field: str) -> int:
    status = pathlib.Path("/proc/self/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024  # reported in kB


def _measure_here(
    framework: str,
    implementation: str,
    shape: tuple[int, int, int],
    dtype: str,
    chunk_size: int | None = None,
    path: str = "train",
) -> int:
    """In this (fresh) process: the peak resident bytes of one step above its inputs and the
    gradients it returns."""
    import gc

    run = make(framework, implementation, shape, dtype, chunk_size, path)
    gc.collect()
    before = _status_bytes("VmRSS:")  # the inputs, the frameworks, and the compiled step
    pathlib.Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    result = run()
    peak = _status_bytes("VmHWM:")
    gradients = sum(int(np.asarray(g).nbytes) for g in result[1:])
    return peak - before - gradients


def loss_memory(
    framework: str,
    implementation: str,
    size: str | tuple[int, int, int],
    dtype: str = "float32",
    chunk_size: int | None = None,
    path: str = "train",
) -> int:
    """Loss memory of the case in bytes, measured in a fresh process (Linux only)."""
    if not sys.platform.startswith("linux"):
        raise Unavailable("loss memory is read from Linux's /proc/self/status")
    if not available(framework, implementation, path):
        raise Unavailable(f"{framework} has no {implementation} case on the {path} path")
    shape = list(SIZES[size] if isinstance(size, str) else size)
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import linear_cross_entropy as m; "
        "print(json.dumps(m._measure_here(sys.argv[2], sys.argv[3], tuple(json.loads(sys.argv[4])),"
        " sys.argv[5], json.loads(sys.argv[6]), sys.argv[7])))"
    )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    here = str(pathlib.Path(__file__).resolve().parent)
    args = [here, framework, implementation, json.dumps(shape), dtype, json.dumps(chunk_size), path]
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{framework}/{implementation}: {done.stderr[-3000:]}")
    return int(json.loads(done.stdout.strip().splitlines()[-1]))
