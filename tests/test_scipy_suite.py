"""SciPy's own tests of logsumexp, softmax and log_softmax, run against xpsoftmax.

SciPy ships ``scipy/special/tests/test_logsumexp.py``; we run the installed module, unchanged,
in a pytest subprocess per array backend, with `scipy_adapter` (a plugin) putting thin
adapters over our functions in place of SciPy's. Backends are chosen as SciPy's own test
suite chooses them: ``SCIPY_ARRAY_API`` names them (what SciPy's ``-b`` option sets), and its
conftest's ``xp`` fixture wraps calls in ``jax.jit`` for JAX and forbids ``compute()`` on Dask.

Every test must pass, but for those SciPy itself marks as expected to fail (or skips) on a
backend: the reasons allowed below are SciPy's, read from the test module's markers.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy", minversion="1.17")

BACKENDS = ["numpy", "array_api_strict", "torch", "jax.numpy", "dask.array"]

#: SciPy's own xfail/skip reasons per backend (its markers on the test module, or the
#: backend's capabilities it declares), the only ones a non-passing test may give.
SCIPY_OWN_REASONS = {
    "array_api_strict": {"int->float promotion"},
    "jax.numpy": {"jax-ml/jax#26000"},
}

#: The pytest configuration of the subprocess: SciPy's markers, and warnings as errors but
#: for SciPy's own test code's use of a pytest feature deprecated since (not ours to fix).
INI = """\
[pytest]
markers =
    array_api_backends: SciPy's marker for tests over array backends
    thread_unsafe: SciPy's marker
    skip_xp_backends: SciPy's marker
    xfail_xp_backends: SciPy's marker
filterwarnings =
    error
    ignore:Passing a non-Collection iterable to parametrize:pytest.PytestRemovedIn10Warning
"""


def _run_scipy_suite(backend: str, tmp_path: Path) -> list[dict[str, str]]:
    report = tmp_path / "report.jsonl"
    (tmp_path / "pytest.ini").write_text(INI)
    tests_dir = str(Path(__file__).parent)
    env = dict(os.environ)
    env.update(
        SCIPY_ARRAY_API=json.dumps([backend]),
        XPSOFTMAX_SCIPY_REPORT=str(report),
        PYTHONPATH=os.pathsep.join(filter(None, [tests_dir, env.get("PYTHONPATH")])),
        # Every test jit-compiles the same few programs afresh (SciPy wraps the function
        # anew per test): a compilation cache cuts JAX's run from minutes to about one.
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-c",
        str(tmp_path / "pytest.ini"),
        "--rootdir",
        str(tmp_path),
        "-p",
        "scipy_adapter",
        "-p",
        "no:cacheprovider",
        "-q",
        "--pyargs",
        "scipy.special.tests.test_logsumexp",
    ]
    done = subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    if not report.exists():
        pytest.fail(f"SciPy's suite did not run:\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}")
    records = [json.loads(line) for line in report.read_text().splitlines()]
    if done.returncode != 0 and not any(r["outcome"] == "failed" for r in records):
        pytest.fail(f"SciPy's suite failed outside its tests:\n{done.stdout[-5000:]}")
    return records


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_scipy_logsumexp_suite(backend: str, tmp_path: Path) -> None:
    if importlib.util.find_spec(backend.partition(".")[0]) is None:
        pytest.skip(f"{backend} is not installed")
    records = _run_scipy_suite(backend, tmp_path)
    counts = collections.Counter(r["outcome"] for r in records)
    failures = [
        f"{r['test']} ({r['when']}):\n{r['reason']}"
        for r in records
        if r["outcome"] in ("failed", "xpassed")
    ]
    assert not failures, "\n\n".join(failures)
    allowed = SCIPY_OWN_REASONS.get(backend, set())
    others = [r for r in records if r["outcome"] in ("skipped", "xfailed")]
    assert all(r["reason"] in allowed for r in others), others
    # SciPy 1.17's module has 407 tests per backend; a much smaller number would mean that
    # collection went wrong rather than that everything passed.
    assert counts["passed"] >= 400, counts
