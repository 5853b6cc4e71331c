"""The pytest-benchmark suite builds its cases with the asv suite's ``common`` module.

One definition of inputs and peers serves asv, pytest-benchmark and the performance report.
It is loaded by path, as ``asv_common``: asv's own package name, ``benchmarks``, is this
directory's too.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_COMMON = Path(__file__).resolve().parents[2] / "asv_bench" / "benchmarks" / "common.py"

if "asv_common" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("asv_common", _COMMON)
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["asv_common"] = _module
    _spec.loader.exec_module(_module)
