"""The performance gate's verdict (``.ci/perf_gate``, ``asv_bench/perf_gate.py``).

The verdict is arithmetic on timings, tested here on timings written out; the timing itself runs
in CI, on two real commits (docs: Tracking regressions). One real worker process times a real
case, so the machinery between the two is exercised too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, load_module

SCRIPT = ROOT / "asv_bench" / "perf_gate.py"
perf_gate = load_module("asv_perf_gate", SCRIPT)


def test_each_case_keeps_its_fastest_time() -> None:
    runs = [{"a": 3.0, "b": 1.0}, {"a": 2.0, "b": 4.0}, {"c": 5.0}]
    assert perf_gate.fastest(runs) == {"a": 2.0, "b": 1.0, "c": 5.0}


def test_a_case_is_slower_from_the_factor_on() -> None:
    base = {"at": 1.0, "above": 1.0, "below": 1.0, "faster": 1.0, "head only": 1.0}
    head = {"at": 1.3, "above": 2.0, "below": 1.29, "faster": 0.5}
    assert perf_gate.slower_cases(base, head, 1.3) == pytest.approx({"at": 1.3, "above": 2.0})


def test_a_suspect_fails_only_when_timing_it_again_confirms_it() -> None:
    base = {"noise": 1.0, "real": 1.0, "same": 1.0}
    head = {"noise": 1.5, "real": 2.0, "same": 1.0}
    asked = []

    def retime(cases: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        asked.append(cases)
        # The noisy case's head was slow once; the real slowdown holds.
        return {"noise": 1.1, "real": 1.2}, {"noise": 1.0, "real": 2.5}

    regressions, merged_base, merged_head = perf_gate.confirmed(base, head, 1.3, retime)
    assert asked == [["noise", "real"]]  # the suspects alone, once
    assert regressions == pytest.approx({"real": 2.0})
    assert merged_base == {"noise": 1.0, "real": 1.0, "same": 1.0}
    assert merged_head == {"noise": 1.0, "real": 2.0, "same": 1.0}


def test_nothing_is_timed_again_without_a_suspect() -> None:
    def retime(cases: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        raise AssertionError(f"timed again: {cases}")

    regressions, _, _ = perf_gate.confirmed({"a": 1.0}, {"a": 1.2}, 1.3, retime)
    assert regressions == {}


def test_the_headline_cases_cover_the_jitted_and_the_per_call_ones() -> None:
    # (In a fresh process: asv's package is named ``benchmarks``, as tests/benchmarks is.)
    code = f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import perf_gate; "
    code += "print('\\n'.join(perf_gate.headline_ids()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    cases = out.stdout.splitlines()
    for case in (
        "jax.jit log_softmax throughput",
        "jax.jit cross_entropy_grad throughput",
        "torch softmax per_call",
        "numpy softmax per_call",
        "torch linear_cross_entropy small",
    ):
        assert case in cases


@pytest.mark.slow
def test_a_worker_times_a_real_case_in_a_fresh_process() -> None:
    env = {**os.environ, **perf_gate.ONE_THREAD, "PYTHONPATH": str(ROOT / "asv_bench")}
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker", "numpy softmax per_call"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT / "asv_bench",
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    import xpsoftmax

    assert Path(result["module"]) == Path(xpsoftmax.__file__).resolve().parent
    # A 64 x 10 softmax: microseconds, not nothing and not seconds; on one core.
    assert 1e-7 < result["times"]["numpy softmax per_call"] < 1e-2
    assert result["cannot"] == {}
    assert result["cores"] in (1, None)


def test_a_case_a_commit_cannot_run_gives_the_reason_instead_of_a_time() -> None:
    # (as an older commit, without a function that a newer benchmark calls, would)
    why = perf_gate.timed_or_why("numpy no_such_function per_call")
    assert isinstance(why, str)
    assert why.split(":")[0].endswith("Error")


def test_refs_and_options_are_checked_before_anything_is_built() -> None:
    with pytest.raises(SystemExit, match="'no-such-ref' is not a commit"):
        perf_gate.main(["no-such-ref", "HEAD"])
    with pytest.raises(SystemExit):
        perf_gate.main(["HEAD", "HEAD", "--factor", "0.9"])


def test_the_baseline_is_named_in_the_changelog() -> None:
    # Moving the baseline accepts whatever it made slower: the CHANGELOG line says so.
    baseline = (ROOT / "asv_bench" / "baseline").read_text(encoding="utf-8").split()[0]
    assert len(baseline) == 40
    assert f"`{baseline[:10]}`" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
