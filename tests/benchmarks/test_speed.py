"""xpsoftmax beside each framework's own kernel, with pytest-benchmark.

In CI the suite runs with ``--benchmark-disable`` (set in pyproject.toml): every case runs once
and checks that xpsoftmax and the peer agree, so the benchmarks cannot rot. To measure::

    python -m pytest tests/benchmarks --benchmark-enable --benchmark-only --benchmark-autosave
    # ... change something, then compare against the saved run:
    python -m pytest tests/benchmarks --benchmark-enable --benchmark-only --benchmark-compare

Each group holds one function, variant and size, with the two implementations side by side.
No test asserts a time: speed targets live in docs/scripts/performance_report.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from asv_common import (
    IMPLEMENTATIONS,
    REDUCTIONS,
    SIZES,
    VARIANT_IDS,
    Case,
    Unavailable,
    cross_entropy_case,
    jacobian_case,
    reduction_case,
)

from xpsoftmax import backends

# torch.func.jvp still calls torch.jit.script inside PyTorch.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)

# torch.compile costs seconds per case: compiled variants get a smaller grid.
_COMPILED = {v.id for v in backends.all_variants() if v.compiled}


def _reduction_params() -> list[Any]:
    params = []
    for variant in VARIANT_IDS:
        for function in REDUCTIONS:
            for size in ("tiny", "vocabulary"):
                if size == "vocabulary" and function == "logsumexp":
                    continue
                if variant in _COMPILED and function != "softmax":
                    continue
                params.append(
                    pytest.param(variant, function, size, id=f"{variant}-{function}-{size}")
                )
    return params


def _run(benchmark: Any, group: str, implementation: str, make: Any, rtol: float) -> None:
    """Time ``make(implementation)``; xpsoftmax's run first checks it agrees with the peer."""
    try:
        case = make(implementation)
        peer = make("peer") if implementation == "xpsoftmax" else None
    except Unavailable as reason:
        pytest.skip(str(reason))
    if peer is not None:
        np.testing.assert_allclose(
            case.variant.to_numpy(case.run()),
            case.variant.to_numpy(peer.run()),
            rtol=rtol,
            atol=rtol / 20,
        )
    benchmark.group = group
    benchmark.extra_info["implementation"] = implementation
    benchmark(case.run)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("variant", "function", "size"), _reduction_params())
def test_reduction(
    benchmark: Any, variant: str, function: str, size: str, implementation: str
) -> None:
    def make(impl: str) -> Case:
        return reduction_case(variant, function, impl, SIZES[size], -1, "float32")

    _run(benchmark, f"{function}-{variant}-{size}", implementation, make, rtol=2e-5)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("function", ["softmax_jacobian", "softmax_jvp"])
@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_jacobian(benchmark: Any, variant: str, function: str, implementation: str) -> None:
    shape = (64, 256) if function == "softmax_jacobian" else (16, 1000)

    def make(impl: str) -> Case:
        return jacobian_case(variant, function, impl, shape)

    _run(benchmark, f"{function}-{variant}", implementation, make, rtol=1e-4)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("variant", VARIANT_IDS)
def test_cross_entropy(benchmark: Any, variant: str, implementation: str) -> None:
    def make(impl: str) -> Case:
        return cross_entropy_case(variant, impl, SIZES["tiny"])

    _run(benchmark, f"cross_entropy-{variant}", implementation, make, rtol=1e-5)
