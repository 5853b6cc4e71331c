"""Smoke test of an installed xpsoftmax wheel, run by .ci/run in a fresh venv with no extras.

It checks what the checkout's own tests cannot: that the wheel holds the whole package (every
module ``import xpsoftmax`` needs, the license), that NumPy input works with only the base
dependencies, and that the ``xpsoftmax`` command, whose subcommands need the ``cli`` extra,
says so and exits with status 2 instead of failing with a traceback. Run it from outside the
checkout, so that the installed copy is the one imported.
"""

from __future__ import annotations

import importlib.metadata
import math
import subprocess
import sys
from pathlib import Path

import numpy as np

import xpsoftmax


def check_installed_copy() -> None:
    location = Path(xpsoftmax.__file__).resolve()
    assert "site-packages" in location.parts, f"xpsoftmax imported from {location}, not the wheel"
    files = importlib.metadata.files("xpsoftmax") or []
    assert any(Path(str(f)).name == "LICENSE" for f in files), "the wheel carries no LICENSE"


def check_softmax() -> None:
    # By hand: the exponentials of [0, log 3] are 1 and 3, so the probabilities are 1/4 and 3/4.
    quarter = xpsoftmax.softmax(np.array([0.0, math.log(3.0)]))
    assert np.allclose(quarter, [0.25, 0.75], rtol=1e-15, atol=0), quarter
    # Against NumPy's exp and sum directly, on rows whose plain exp would overflow.
    logits = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1000.0], [-5.0, -5.0, -5.0]])
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected = shifted / shifted.sum(axis=-1, keepdims=True)
    result = xpsoftmax.softmax(logits)
    assert type(result) is np.ndarray, type(result)
    assert result.dtype == np.float64, result.dtype
    assert np.allclose(result, expected, rtol=1e-14, atol=0), (result, expected)


def check_command_names_the_missing_extra() -> None:
    command = Path(sys.executable).with_name("xpsoftmax")
    proc = subprocess.run(
        [str(command), "compare", "--quick"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "xpsoftmax[cli]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def main() -> int:
    check_installed_copy()
    check_softmax()
    check_command_names_the_missing_extra()
    print(f"wheel smoke test passed: xpsoftmax {xpsoftmax.__version__} from {xpsoftmax.__file__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
