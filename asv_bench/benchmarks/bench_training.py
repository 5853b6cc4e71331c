"""asv benchmarks for training: a forward and backward pass, and the memory kept between them.

``Training.time_step`` times one gradient (cases in ``training.py``), and
``Training.track_saved_bytes`` records the bytes the framework keeps for the backward pass, both
for xpsoftmax and the framework's own op, so the published graphs put them side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .training import FRAMEWORKS, IMPLEMENTATIONS, SHAPES, Unavailable, make, saved_bytes


class Training:
    """Forward + backward of cross-entropy over a 32000-class vocabulary and of causal-masked
    attention scores, per framework, beside the native op."""

    params = (FRAMEWORKS, tuple(SHAPES), IMPLEMENTATIONS)
    param_names = ("framework", "case", "implementation")
    timeout = 600
    number = 1
    repeat = (3, 10, 60.0)
    run: Callable[[], Any]

    def setup(self, framework: str, case: str, implementation: str) -> None:
        try:
            self.run = make(framework, case, implementation)
        except Unavailable as reason:
            raise NotImplementedError(str(reason)) from None

    def time_step(self, framework: str, case: str, implementation: str) -> None:
        self.run()

    def track_saved_bytes(self, framework: str, case: str, implementation: str) -> int:
        return saved_bytes(framework, case, implementation, size="large")

    track_saved_bytes.unit = "bytes"  # type: ignore[attr-defined]
