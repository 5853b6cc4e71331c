"""linear_cross_entropy's paths beside the materialised reference and PyTorch's chunked path,
with pytest-benchmark.

Run as plain tests in CI (``--benchmark-disable``): each case runs once, at a tiny size, and
its loss and gradients are checked against the same framework's materialised reference on the
same path (its ``train`` path for xpsoftmax's ``per-token`` and ``filtered``). Measure with
``--benchmark-enable`` (the small size); the target table, at the GPT-2 head, is
``docs/scripts/large_vocabularies_report.py``'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_module
from version_bounds import newer_needed

cases = load_module(
    "asv_linear_cross_entropy", ROOT / "asv_bench" / "benchmarks" / "linear_cross_entropy.py"
)

_CASES = [
    (f, i, p)
    for f, methods in cases.METHODS.items()
    for i in methods
    for p in cases.PATHS
    if cases.available(f, i, p)
]


@pytest.mark.parametrize(("framework", "implementation", "path"), _CASES)
def test_linear_cross_entropy_step(
    benchmark: Any, framework: str, implementation: str, path: str
) -> None:
    size = "small" if benchmark.enabled else cases.TEST_SIZE
    older = newer_needed("transposed-maps", "jax") if framework == "jax" else None
    if older is not None and implementation == "xpsoftmax" and path == "per-token":
        # (a JAX older than the per-token rule's capability: our error, naming it)
        with pytest.raises(ImportError, match=older):
            benchmark(lambda: cases.make(framework, implementation, size, path=path)())
        return
    run = cases.make(framework, implementation, size, path=path)
    if implementation != "reference":
        peer_path = path if path in cases.PEER_PATHS else "train"
        expected = cases.make(framework, "reference", size, path=peer_path)()
        got = run()
        assert len(got) == len(expected) == (1 if path == "forward" else 3)
        for ours, theirs in zip(got, expected, strict=True):
            theirs = np.asarray(theirs)
            np.testing.assert_allclose(
                np.asarray(ours), theirs, rtol=2e-4, atol=2e-6 * float(np.max(np.abs(theirs)))
            )
    benchmark.group = f"linear-cross-entropy-{framework}-{path}"
    benchmark.extra_info["implementation"] = implementation
    benchmark(run)
