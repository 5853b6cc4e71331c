"""The docs' worked example: an MLP trained on scikit-learn's digits with xpsoftmax.cross_entropy
follows the same loss curve, in float64, as with PyTorch's and optax's own cross-entropy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_module

pytest.importorskip("sklearn")


def _example() -> Any:
    return load_module("digits_training", ROOT / "docs" / "scripts" / "digits_training.py")


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_loss_curves_match_the_native_loss(framework: str) -> None:
    pytest.importorskip(framework)
    if framework == "jax":
        pytest.importorskip("optax")
    train = getattr(_example(), f"train_{framework}")
    ours, _ = train("xpsoftmax", 30)
    native, _ = train("native", 30)
    assert ours[-1] < 0.5 * ours[0]  # it learns
    np.testing.assert_allclose(ours, native, rtol=1e-9, atol=0)
