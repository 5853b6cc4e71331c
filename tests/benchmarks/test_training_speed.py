"""Training steps (forward + backward) beside the framework's own op, with pytest-benchmark.

Run as plain tests in CI (``--benchmark-disable``): each case runs once, at the small size, and
its gradient is checked against the peer's. Measure with ``--benchmark-enable``; the target table
is ``docs/scripts/training_report.py``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_module

training = load_module("asv_training", ROOT / "asv_bench" / "benchmarks" / "training.py")


def _to_numpy(a: Any) -> np.ndarray:
    return np.asarray(a.detach() if hasattr(a, "detach") else a)


# JAX's gradient is one jit: it has no separate eager forward case.
_CASES = [
    (framework, case)
    for framework in training.FRAMEWORKS
    for case in training.SHAPES
    if not (framework == "jax" and case == "cross_entropy_forward")
]


@pytest.mark.parametrize("implementation", training.IMPLEMENTATIONS)
@pytest.mark.parametrize(("framework", "case"), _CASES)
def test_training_step(benchmark: Any, framework: str, case: str, implementation: str) -> None:
    size = "large" if benchmark.enabled else "small"
    run = training.make(framework, case, implementation, size)
    if implementation == "xpsoftmax":
        peer = training.make(framework, case, "peer", size)
        np.testing.assert_allclose(_to_numpy(run()), _to_numpy(peer()), rtol=2e-4, atol=1e-7)
        ours = training.saved_bytes(framework, case, "xpsoftmax")
        assert 0 < ours <= training.saved_bytes(framework, case, "peer")
    benchmark.group = f"training-{case}-{framework}"
    benchmark.extra_info["implementation"] = implementation
    benchmark(run)
