"""asv benchmarks for linear_cross_entropy: a classifier head's loss and gradients, per framework.

``LinearCrossEntropy`` times one forward + backward (``time_step``) and records asv's peak
resident memory of the process (``peakmem_step``: the framework, inputs and gradients included)
and the loss memory (``track_loss_memory``: the peak above the inputs and their gradients,
measured in a fresh process; see ``linear_cross_entropy.py``), for xpsoftmax beside the
materialised reference and PyTorch's chunked path.

``LinearCrossEntropyPaths`` times each path of the small head (gradients in the forward pass,
half the targets ignored, plain evaluation, the loss per token that recomputes the logits,
gradient filtering) for xpsoftmax and, where they have the path, its peers.

``HeadlineLinearCrossEntropy`` is one small case of xpsoftmax alone, so that
``--bench Headline`` watches it with the rest of the headline suite (its peers are timed here,
under ``LinearCrossEntropy``).
"""

from __future__ import annotations

from typing import Any

from .common import compute_on_one_thread
from .linear_cross_entropy import (
    FRAMEWORKS,
    IMPLEMENTATIONS,
    PATHS,
    SIZES,
    Unavailable,
    loss_memory,
    make,
)


class LinearCrossEntropy:
    """Mean cross-entropy of ``h @ W.T`` and its gradients: xpsoftmax, the materialised
    reference, and PyTorch's chunked path, at a small size and at a GPT-2 head."""

    params = (list(FRAMEWORKS), list(IMPLEMENTATIONS), list(SIZES))
    param_names = ("framework", "implementation", "size")
    timeout = 900
    number = 1
    repeat = (2, 5, 60.0)
    run: Any

    def setup(self, framework: str, implementation: str, size: str) -> None:
        try:
            self.run = make(framework, implementation, size)
        except Unavailable as reason:
            raise NotImplementedError(str(reason)) from None

    def time_step(self, framework: str, implementation: str, size: str) -> None:
        self.run()

    def peakmem_step(self, framework: str, implementation: str, size: str) -> None:
        self.run()

    def track_loss_memory(self, framework: str, implementation: str, size: str) -> int:
        return loss_memory(framework, implementation, size)

    track_loss_memory.unit = "bytes"  # type: ignore[attr-defined]


class LinearCrossEntropyPaths:
    """Each path of linear_cross_entropy at the small size (see ``linear_cross_entropy.py``),
    xpsoftmax beside the peers that have the path."""

    params = (list(FRAMEWORKS), list(IMPLEMENTATIONS), list(PATHS))
    param_names = ("framework", "implementation", "path")
    timeout = 600
    number = 1
    repeat = (2, 5, 30.0)
    run: Any

    def setup(self, framework: str, implementation: str, path: str) -> None:
        try:
            self.run = make(framework, implementation, "small", path=path)
        except Unavailable as reason:
            raise NotImplementedError(str(reason)) from None

    def time_step(self, framework: str, implementation: str, path: str) -> None:
        self.run()

    def track_loss_memory(self, framework: str, implementation: str, path: str) -> int:
        return loss_memory(framework, implementation, "small", path=path)

    track_loss_memory.unit = "bytes"  # type: ignore[attr-defined]


class HeadlineLinearCrossEntropy:
    """xpsoftmax.linear_cross_entropy, forward + backward, at the small size."""

    params = (["numpy", "jax", "torch"],)
    param_names = ("framework",)
    timeout = 300
    number = 1
    repeat = (3, 10, 10.0)
    # As `bench_headline.Headline`: one thread, and three rounds that ``asv continuous``
    # interleaves with the other commit's, so that equal commits compare equal.
    rounds = 3
    run: Any

    def setup(self, framework: str) -> None:
        compute_on_one_thread()
        try:
            self.run = make(framework, "xpsoftmax", "small")
        except Unavailable as reason:
            raise NotImplementedError(str(reason)) from None

    def time_step(self, framework: str) -> None:
        self.run()
