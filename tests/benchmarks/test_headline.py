"""The headline cases (asv's ``Headline``, the performance gate's) under pytest-benchmark.

Run as tests (CI's default, ``--benchmark-disable``), each case runs once and checks that
xpsoftmax agrees with the framework's own function. With ``--benchmark-enable`` pytest-benchmark
times both implementations of each case, grouped so that its report sets them side by side.
Whether a commit got slower is the performance gate's question (``.ci/perf_gate``,
docs/regressions.rst), which times two commits in fresh processes.

The cells asv's ``Headline`` reports as skipped (NumPy has no autodiff, so no gradient;
torch.compile per call) are left out here, not skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from asv_common import (
    HEADLINE_FUNCTIONS,
    HEADLINE_SIZES,
    HEADLINE_VARIANT_IDS,
    IMPLEMENTATIONS,
    Unavailable,
    headline_case,
    headline_left_out,
)


def _params() -> list[Any]:
    return [
        pytest.param(variant, function, size, id=f"{function}-{variant}-{size}")
        for variant in HEADLINE_VARIANT_IDS
        for function in HEADLINE_FUNCTIONS
        for size in HEADLINE_SIZES
        if headline_left_out(variant, function, size) is None
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize(("variant", "function", "size"), _params())
def test_headline(
    benchmark: Any, variant: str, function: str, size: str, implementation: str
) -> None:
    try:
        case = headline_case(variant, function, implementation, size)
        peer = headline_case(variant, function, "peer", size) if implementation != "peer" else None
    except Unavailable as reason:  # a machine without the framework: say which
        pytest.skip(str(reason))
    if peer is not None:
        # Gradients of a mean over 256 rows are ~1e-3 / 4096: an absolute floor far below that.
        np.testing.assert_allclose(
            case.variant.to_numpy(case.run()),
            peer.variant.to_numpy(peer.run()),
            rtol=2e-5,
            atol=1e-8,
        )
    # One group per case: the report sets the two implementations side by side.
    benchmark.group = f"{function}-{variant}-{size}"
    benchmark.extra_info["implementation"] = implementation
    benchmark(case.run)
