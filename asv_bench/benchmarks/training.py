"""Training cases: a forward and backward pass, and the memory kept between them.

Shared by the asv ``Training`` benchmarks (``bench_training.py``), the pytest-benchmark suite and
``docs/scripts/training_report.py``, so that the three measure the same thing. Each case is built
for xpsoftmax or for the framework's own op ("peer"):

* ``cross_entropy``: the gradient of the mean cross-entropy over class indices with respect to
  the logits; peers ``torch.nn.functional.cross_entropy`` and optax's
  ``softmax_cross_entropy_with_integer_labels``;
* ``cross_entropy_forward``: the loss alone, nothing recorded (PyTorch);
* ``masked_softmax``: causal-masked attention scores, softmax and its VJP; peers
  ``torch.softmax(x.masked_fill(~mask, -inf))`` and ``jax.nn.softmax(x, where=mask)``.

JAX cases are one ``jax.jit`` of the gradient (or VJP), PyTorch ones eager autograd.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np

import xpsoftmax

#: Shapes: the issue's sizes, and small ones for quick runs.
SHAPES = {
    "cross_entropy": {"large": (1024, 32000), "small": (256, 4096)},
    "cross_entropy_forward": {"large": (1024, 32000), "small": (256, 4096)},
    "masked_softmax": {"large": (4, 8, 512, 512), "small": (2, 4, 128, 128)},
}
FRAMEWORKS = ("torch", "jax")
IMPLEMENTATIONS = ("xpsoftmax", "peer")


class Unavailable(NotImplementedError):
    """The case cannot run here (framework missing, or no such case for it)."""


def _inputs(case: str, shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.standard_normal(shape)).astype(np.float32)
    if case == "masked_softmax":
        n = shape[-1]
        mask = np.tril(np.ones((n, n), dtype=bool))
        return {"x": logits, "mask": mask, "g": rng.standard_normal(shape).astype(np.float32)}
    return {"x": logits, "target": rng.integers(0, shape[-1], size=shape[:-1])}


def make(framework: str, case: str, implementation: str, size: str = "large") -> Callable[[], Any]:
    """A no-argument callable that runs the case once and waits for the result."""
    data = _inputs(case, SHAPES[case][size])
    builders = {"torch": _torch_case, "jax": _jax_case}
    try:
        run = builders[framework](case, implementation, data)
    except ImportError as error:
        raise Unavailable(f"{framework} is not installed: {error}") from None
    run()  # compile, warm up and allocate outside the timing
    return run


def _torch_case(case: str, implementation: str, data: dict[str, np.ndarray]) -> Callable[[], Any]:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(data["x"], requires_grad=True)
    ours = implementation == "xpsoftmax"
    if case == "masked_softmax":
        mask, g = torch.tensor(data["mask"]), torch.tensor(data["g"])

        def softmax(a: Any) -> Any:
            if ours:
                return xpsoftmax.softmax(a, where=mask)
            return torch.softmax(a.masked_fill(~mask, -torch.inf), -1)

        def masked() -> Any:
            (grad,) = torch.autograd.grad(softmax(x), x, g)
            return grad

        return masked
    target = torch.tensor(data["target"])
    loss_fn = xpsoftmax.cross_entropy if ours else F.cross_entropy
    if case == "cross_entropy_forward":
        plain = x.detach()

        def forward() -> Any:
            with torch.no_grad():
                return loss_fn(plain, target)

        return forward

    def forward_backward() -> Any:
        (grad,) = torch.autograd.grad(loss_fn(x, target), x)
        return grad

    return forward_backward


def _jax_case(case: str, implementation: str, data: dict[str, np.ndarray]) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    ours = implementation == "xpsoftmax"
    x = jnp.asarray(data["x"])
    if case == "cross_entropy_forward":
        raise Unavailable("JAX has no eager forward case: its gradient is one jit")
    if case == "masked_softmax":
        mask, g = jnp.asarray(data["mask"]), jnp.asarray(data["g"])
        softmax = (
            (lambda a: xpsoftmax.softmax(a, where=mask))
            if ours
            else (lambda a: jax.nn.softmax(a, where=mask))
        )
        vjp = jax.jit(lambda a, cotangent: jax.vjp(softmax, a)[1](cotangent)[0])
        return lambda: vjp(x, g).block_until_ready()
    target = jnp.asarray(data["target"])
    grad = jax.jit(jax.grad(lambda a: _jax_loss(ours)(a, target)))
    return lambda: grad(x).block_until_ready()


def _jax_loss(ours: bool) -> Callable[[Any, Any], Any]:
    if ours:
        return xpsoftmax.cross_entropy
    import optax

    return lambda a, t: optax.softmax_cross_entropy_with_integer_labels(a, t).mean()


# -- memory kept for the backward pass ---------------------------------------------------------


def saved_bytes(framework: str, case: str, implementation: str, size: str = "small") -> int:
    """Bytes the framework keeps between forward and backward for the case.

    PyTorch: every tensor ``saved_tensors_hooks`` sees packed. JAX: the residuals that
    ``jax.ad_checkpoint.print_saved_residuals`` lists, but the function's own arguments (they
    live anyway).
    """
    data = _inputs(case, SHAPES[case][size])
    ours = implementation == "xpsoftmax"
    if framework == "torch":
        return _torch_saved(case, ours, data)
    return _jax_saved(case, ours, data)


def _torch_saved(case: str, ours: bool, data: dict[str, np.ndarray]) -> int:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(data["x"], requires_grad=True)
    if case == "masked_softmax":
        mask = torch.tensor(data["mask"])
        if ours:
            return torch_saved_bytes(lambda: xpsoftmax.softmax(x, where=mask))
        return torch_saved_bytes(lambda: torch.softmax(x.masked_fill(~mask, -torch.inf), -1))
    target = torch.tensor(data["target"])
    return torch_saved_bytes(
        lambda: (xpsoftmax.cross_entropy if ours else F.cross_entropy)(x, target)
    )


def torch_saved_bytes(fn: Callable[[], Any]) -> int:
    """Bytes of every tensor PyTorch packs for the backward pass while `fn` runs."""
    import torch

    sizes: list[int] = []

    def pack(t: Any) -> Any:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(sizes)


def _jax_saved(case: str, ours: bool, data: dict[str, np.ndarray]) -> int:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(data["x"])
    if case == "masked_softmax":
        mask = jnp.asarray(data["mask"])
        if ours:
            return jax_residual_bytes(lambda a: xpsoftmax.softmax(a, where=mask), x)
        return jax_residual_bytes(lambda a: jax.nn.softmax(a, where=mask), x)
    target = jnp.asarray(data["target"])
    loss = _jax_loss(ours)
    return jax_residual_bytes(lambda a: loss(a, target), x)


_ITEM_BYTES = {"bool": 1, "f16": 2, "bf16": 2, "f32": 4, "f64": 8, "i32": 4, "i64": 8}


def jax_residual_bytes(fn: Callable[[Any], Any], x: Any, min_size: int = 1) -> int:
    """Bytes of the residuals ``print_saved_residuals`` lists for ``fn(x)``, but the
    function's own arguments (they live anyway) and arrays of fewer than `min_size` entries."""
    from jax.ad_checkpoint import print_saved_residuals

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_saved_residuals(fn, x)
    total = 0
    for line in printed.getvalue().splitlines():
        match = re.match(r"(\w+)\[([\d,]*)\]", line.strip())
        if match and "from the argument" not in line:
            size = int(np.prod([int(n) for n in match.group(2).split(",") if n]))
            if size >= min_size:
                total += size * _ITEM_BYTES.get(match.group(1), 4)
    return total
