"""The docs' worked example: an MLP trained on scikit-learn's digits with xpsoftmax.cross_entropy
follows the same loss curve, in float64, as with PyTorch's and optax's own cross-entropy."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
_PATH = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "digits_training.py"


def _example() -> Any:
    if "digits_training" not in sys.modules:
        spec = importlib.util.spec_from_file_location("digits_training", _PATH)
        assert spec is not None
        assert spec.loader is not None
        sys.modules["digits_training"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["digits_training"])
    return sys.modules["digits_training"]


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
