"""The headline cases (asv's ``Headline``) under pytest-benchmark: the regression gate for CI.

Run as tests (CI's default, ``--benchmark-disable``), each case runs once and checks that
xpsoftmax agrees with the framework's own function. Measured, the results go to a JSON file that
``gate.py`` reads: it compares each case's *ratio* to its peer (xpsoftmax's time / the peer's,
both timed in the same run on the same machine) with a baseline, and fails when a ratio grew by
more than a threshold. docs/regressions.rst has the commands and a CI job.

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
    # gate.py pairs the two implementations of one group into a ratio.
    benchmark.group = f"{function}-{variant}-{size}"
    benchmark.extra_info["implementation"] = implementation
    benchmark(case.run)
