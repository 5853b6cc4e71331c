"""Training steps (forward + backward) beside the framework's own op, with pytest-benchmark.

Run as plain tests in CI (``--benchmark-disable``): each case runs once, at the small size, and
its gradient is checked against the peer's. Measure with ``--benchmark-enable``; the target table
is ``docs/scripts/training_report.py``'s.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "asv_bench" / "benchmarks" / "training.py"
if "asv_training" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("asv_training", _PATH)
    assert _spec is not None
    assert _spec.loader is not None
    sys.modules["asv_training"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["asv_training"])
training = sys.modules["asv_training"]


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
