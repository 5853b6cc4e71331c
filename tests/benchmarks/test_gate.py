"""The regression gate (``gate.py``) fails on a real slowdown and passes without one.

End to end, as CI runs it: pytest-benchmark times one headline case in a subprocess and writes
its JSON; ``gate.py`` compares the ratios with the baseline run's. The slowdown is injected by
a plugin that makes ``xpsoftmax.softmax`` do its work eight times, against a threshold of a
doubled ratio: far apart enough that a busy machine cannot blur them. Nothing here asserts how
fast xpsoftmax is; the unchanged run only has to stay within twice its own baseline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from asv_common import (
    HEADLINE_FUNCTIONS,
    HEADLINE_SIZES,
    HEADLINE_VARIANT_IDS,
    headline_left_out,
)

from .gate import compare, main, ratios

ROOT = Path(__file__).resolve().parents[2]
GATE = Path(__file__).resolve().parent / "gate.py"

#: A module loaded with ``-p``: from then on ``xpsoftmax.softmax`` repeats its work 8 times.
SLOWDOWN_PLUGIN = """
import xpsoftmax

_softmax = xpsoftmax.softmax


def softmax(*args, **kwargs):
    for _ in range(7):  # the injected regression: the same work, done 8 times in all
        _softmax(*args, **kwargs)
    return _softmax(*args, **kwargs)


xpsoftmax.softmax = softmax
"""


def _time_headline_softmax(out: Path, tmp_path: Path, slow: bool) -> None:
    plugin = ["-p", "inject_slowdown"] if slow else []
    # Not this run's pytest settings: under xdist (CI's -n 2) the worker's PYTEST_XDIST_* would
    # make pytest-benchmark in the subprocess believe it runs under xdist too, and disable itself.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/benchmarks/test_headline.py",
        "-k",
        "softmax-numpy-throughput and not log_softmax",
        *plugin,
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-q",
        "--benchmark-enable",
        "--benchmark-only",
        "--benchmark-warmup=off",
        "--benchmark-min-rounds=7",
        "--benchmark-max-time=0.2",
        f"--benchmark-json={out}",
    ]
    proc = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _gate(results: Path, baseline: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GATE), str(results), "--baseline", str(baseline), "--max-increase=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_the_gate_fails_on_a_slowdown_and_passes_without_one(tmp_path: Path) -> None:
    (tmp_path / "inject_slowdown.py").write_text(SLOWDOWN_PLUGIN, encoding="utf-8")
    baseline, slowed, unchanged = (tmp_path / f"{n}.json" for n in ("base", "slow", "same"))
    _time_headline_softmax(baseline, tmp_path, slow=False)
    _time_headline_softmax(slowed, tmp_path, slow=True)
    _time_headline_softmax(unchanged, tmp_path, slow=False)

    failing = _gate(slowed, baseline)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "softmax-numpy-throughput" in failing.stderr
    passing = _gate(unchanged, baseline)
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_ratios_pair_each_group() -> None:
    run = {
        "benchmarks": [
            {"group": "g", "extra_info": {"implementation": "xpsoftmax"}, "stats": {"min": 3.0}},
            {"group": "g", "extra_info": {"implementation": "peer"}, "stats": {"min": 2.0}},
            {"group": "alone", "extra_info": {"implementation": "xpsoftmax"}, "stats": {"min": 1}},
        ]
    }
    assert ratios(run) == {"g": 1.5}
    assert ratios({"stat": "min", "ratios": {"g": 1.5}}) == {"g": 1.5}


def test_cases_on_one_side_only_are_listed_not_failed() -> None:
    lines, failed = compare({"a": 1.0, "gone": 1.0}, {"a": 1.4, "new": 9.0}, max_increase=0.5)
    assert failed == []
    assert any("only in the baseline" in line for line in lines)
    assert any(line.rstrip().endswith("new") for line in lines)


def test_the_committed_baseline_covers_every_headline_case() -> None:
    path = GATE.parent / "headline_baseline.json"
    baseline = json.loads(path.read_text(encoding="utf-8"))

    expected = {
        f"{function}-{variant}-{size}"
        for variant in HEADLINE_VARIANT_IDS
        for function in HEADLINE_FUNCTIONS
        for size in HEADLINE_SIZES
        if headline_left_out(variant, function, size) is None
    }
    assert set(baseline["ratios"]) == expected
    # gate.py reads the file as results and as a baseline: compared with itself, it passes.
    assert main([str(path), "--baseline", str(path)]) == 0
