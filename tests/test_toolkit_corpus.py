"""xpsoftmax.testing on code it has not seen: the corpus of tests/toolkit_corpus.py, planted bugs and
public libraries' functions, each checked on every CPU variant against its expected verdicts.

A case fails on a crash (anything but the AssertionError of verdicts), a false alarm (a check
failing where the table expects none) or a missed finding. The planted cases run in this test
process, after whatever ran before in it; the public ones in a fresh one with SCIPY_ARRAY_API=1
(which SciPy reads once, at import), one after the other, so that each case also runs after many
others: their verdicts must not depend on the history either way.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import toolkit_corpus as corpus
from packaging.version import Version

pytest.importorskip("sklearn")

#: Words each of these verdicts must say, beyond its variant and check.
SAYS = {
    ("planted.row_sizes", "array_api_strict:device1"): "devices: result is on cpu, the input on "
    "device1",
    ("scipy.stats.entropy", "array_api_strict:device1"): "devices: fn fails on device1 but runs "
    "on cpu: RuntimeError: Can't convert array on the 'array_api_strict.Device('device1')' device "
    "to a NumPy array.",
    ("scipy.special.log_softmax", "torch"): "gradients: differentiating fn raised RuntimeError: "
    "one of the variables needed for gradient computation has been modified by an inplace "
    "operation: [torch.DoubleTensor [3, 1]], which is output 0 of Amax",
    ("sklearn.preprocessing.normalize", "torch"): "which is output 0 of Sqrt",
    ("sklearn.utils.extmath.softmax", "torch"): "which is output 0 of Exp",
    ("xpx.cov", "dask"): "types: dtype float64, expected float32 (the input's)",
    ("sklearn.preprocessing.minmax_scale", "torch"): "call: fn raised TypeError: asarray(): "
    "argument 'dtype' must be torch.dtype, not type",
    ("planted.exp_quiet_on_numpy_only", "dask"): "warnings: RuntimeWarning: overflow "
    "encountered in exp",
}


def lines_of(message: str) -> dict[str, list[str]]:
    """Each variant's verdict lines, continuation lines joined to theirs."""
    found: dict[str, list[str]] = {}
    for line in message.splitlines()[1:]:
        if line.startswith("    "):
            variant = next(reversed(found))
            found[variant][-1] += "\n" + line
        else:
            found.setdefault(line.split(": ")[0], []).append(line)
    return found


def mismatches(outcomes: dict[str, dict[str, Any]]) -> list[str]:
    """Each crash, false alarm, missed finding and missing words, one line each."""
    problems, runnable = [], corpus.runnable_variants()
    for name, outcome in outcomes.items():
        if outcome["crash"]:
            problems.append(f"{name}: crashed:\n{outcome['crash']}")
            continue
        expected = corpus.CASES[name].verdicts()
        found = {v: set(checks) for v, checks in outcome["verdicts"].items()}
        said = lines_of(outcome["message"])
        for v in runnable:
            problems += [
                f"{name}: false alarm: {line}"
                for line in said.get(v, [])
                if line.split(": ")[1] not in expected.get(v, set())
            ]
            missed = sorted(expected.get(v, set()) - found.get(v, set()))
            problems += [f"{name}: missed: {v}: {check}" for check in missed]
        for (case, v), words in SAYS.items():
            if (
                case == name
                and v in runnable
                and not any(words in line for line in said.get(v, []))
            ):
                problems.append(f"{name}: {v} does not say {words!r}")
    return problems


@pytest.mark.slow
def test_planted_bugs_are_found_and_correct_functions_pass() -> None:
    outcomes = {case.name: corpus.run(case) for case in corpus.PLANTED}
    assert not mismatches(outcomes), "\n".join(mismatches(outcomes))


#: The versions the public cases' verdicts were recorded with: older ones behave otherwise
#: (SciPy 1.14's logsumexp converts every input to NumPy; NumPy 1 promotes by value).
RECORDED_WITH = {"numpy": "2.0", "scipy": "1.17", "scikit-learn": "1.9", "array-api-extra": "0.11"}


@pytest.mark.slow
def test_public_libraries_functions_get_their_verdicts() -> None:
    older = [
        f"{name} {importlib.metadata.version(name)} (recorded with {version})"
        for name, version in RECORDED_WITH.items()
        if Version(importlib.metadata.version(name)) < Version(version)
    ]
    if older:
        pytest.skip("the public cases' verdicts are those of newer releases: " + ", ".join(older))
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    script = Path(corpus.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "public"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    outcomes = json.loads(done.stdout.splitlines()[-1])
    assert set(outcomes) == {case.name for case in corpus.PUBLIC}
    assert not mismatches(outcomes), "\n".join(mismatches(outcomes))


def test_the_table_names_known_variants_and_checks() -> None:
    from xpsoftmax.testing._findings import CHECKS

    for case in corpus.CASES.values():
        for v, checks in case.verdicts().items():
            assert v in corpus.VARIANTS, (case.name, v)
            assert checks <= set(CHECKS), (case.name, checks)
