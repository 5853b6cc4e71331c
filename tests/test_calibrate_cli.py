"""``xpsoftmax calibrate``, run as users run it: in a subprocess, on .npy, .npz and .csv files.

The figures it prints and writes are checked against computations written out here (SciPy's
minimiser, `scipy.special.logsumexp`, a NumPy loop over the bins), never against the library.
Also here: the command line on a base install (no ``cli`` extra, no framework), and a missing
module of the extra making a subcommand that needs it say what to install (exit status 2), both
tested with an import blocker on ``sys.meta_path`` in a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
from conftest import run_python
from scipy import special
from test_calibration import mean_nll, numpy_error, overconfident, scipy_temperature

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``xpsoftmax ARGS`` in a fresh interpreter, after `prelude` (Python source) has run."""
    code = (
        f"{prelude}\nimport sys\nfrom xpsoftmax.__main__ import main\nsys.exit(main(sys.argv[1:]))"
    )
    return run_python("-c", code, *args, env={**os.environ, "PYTHONWARNINGS": "error"})


class HeldOut(NamedTuple):
    """The fixture's files: their folder, and the logits and labels they hold."""

    folder: Path
    z: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> HeldOut:
    """An over-confident model's logits and labels, saved in each format the command reads."""
    folder = tmp_path_factory.mktemp("calibrate")
    z, y = overconfident(np.random.default_rng(12), n=400, k=5)
    np.save(folder / "logits.npy", z)
    np.save(folder / "labels.npy", y)
    np.savez(folder / "held_out.npz", logits=z, labels=y)
    np.savetxt(folder / "logits.csv", z, delimiter=",", fmt="%.17g", header="a,b,c,d,e")
    np.savetxt(folder / "labels.csv", y, delimiter=",", fmt="%d")
    return HeldOut(folder, z, y)


@pytest.mark.parametrize(
    "files",
    [("logits.npy", "labels.npy"), ("held_out.npz", "held_out.npz"), ("logits.csv", "labels.csv")],
    ids=["npy", "npz", "csv"],
)
def test_figures_on_each_format(held_out: HeldOut, files: tuple[str, str]) -> None:
    folder, z, y = held_out
    report, picture = folder / f"{files[0]}.json", folder / f"{files[0]}.png"
    proc = run_cli(
        "calibrate",
        *(str(folder / f) for f in files),
        "--json",
        str(report),
        "--plot",
        str(picture),
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    figures = json.loads(report.read_text())
    t = scipy_temperature(z, y)
    np.testing.assert_allclose(figures["temperature"], t, rtol=1e-6)
    np.testing.assert_allclose(figures["before"]["nll"], mean_nll(1.0, z, y), rtol=1e-12)
    np.testing.assert_allclose(figures["after"]["nll"], mean_nll(t, z, y), rtol=1e-9)
    np.testing.assert_allclose(figures["before"]["ece"], numpy_error(z, y, 15, "l1"), rtol=1e-12)
    np.testing.assert_allclose(figures["after"]["ece"], numpy_error(z, y, 15, "l1", t), rtol=1e-6)
    accuracy = np.mean(z.argmax(axis=-1) == y)
    assert figures["before"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)
    assert figures["after"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)
    assert f"{figures['temperature']:.6g}" in proc.stdout
    for word in ("temperature", "NLL", "ECE", "accuracy", "before", "after"):
        assert word in proc.stdout
    assert picture.read_bytes().startswith(PNG_SIGNATURE)
    # One set given: fitted and measured on it, which the report and the JSON say.
    assert figures["fit_set"]["samples"] == len(y)
    assert figures["fit_set"]["rows"] == "all"
    assert figures["test_set"] == "the same samples"
    assert proc.stdout.splitlines()[1] == f"{'measured on':14} the same samples"
    assert any("flatters" in note for note in figures["notes"])


def test_n_bins_and_no_optimum(held_out: HeldOut, tmp_path: Path) -> None:
    z = held_out.z
    np.save(tmp_path / "right.npy", z.argmax(axis=-1))  # every label the winner: T -> 0
    report = tmp_path / "report.json"
    proc = run_cli(
        "calibrate",
        str(held_out.folder / "logits.npy"),
        str(tmp_path / "right.npy"),
        "--n-bins",
        "4",
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(report.read_text())
    assert figures["temperature"] == 0.0
    assert figures["after"] is None
    assert any("T = 0" in note for note in figures["notes"])
    assert len(figures["before"]["curve"]["count"]) == 4
    assert figures["before"]["accuracy"] == 1.0


def _figures_of(proc: subprocess.CompletedProcess[str], report: Path) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    figures: dict[str, Any] = json.loads(report.read_text())
    return figures


def _assert_measured_on(figures: dict[str, Any], z: np.ndarray, y: np.ndarray, t: float) -> None:
    """T is `t`, and the figures before and after are those of (z, y) at T = 1 and at T.

    The figures after are computed here at the T reported, checked against `t` first: off the
    set T was fitted on, the NLL's slope in T is not 0, and the fit's last digits would show.
    """
    np.testing.assert_allclose(figures["temperature"], t, rtol=1e-6)
    fitted = figures["temperature"]
    np.testing.assert_allclose(figures["before"]["nll"], mean_nll(1.0, z, y), rtol=1e-12)
    np.testing.assert_allclose(figures["after"]["nll"], mean_nll(fitted, z, y), rtol=1e-9)
    np.testing.assert_allclose(figures["before"]["ece"], numpy_error(z, y, 15, "l1"), rtol=1e-12)
    np.testing.assert_allclose(
        figures["after"]["ece"], numpy_error(z, y, 15, "l1", fitted), rtol=1e-9
    )
    accuracy = np.mean(z.argmax(axis=-1) == y)
    assert figures["before"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)


def test_fit_on_the_rest_measure_on_a_held_out_fraction(held_out: HeldOut, tmp_path: Path) -> None:
    folder, z, y = held_out
    report = tmp_path / "split.json"
    files = [str(folder / "logits.npy"), str(folder / "labels.npy")]
    proc = run_cli(
        "calibrate", *files, "--test-fraction", "0.3", "--seed", "7", "--json", str(report)
    )
    figures = _figures_of(proc, report)
    # The documented draw: the first round(F n) rows of default_rng(seed).permutation(n).
    held = np.random.default_rng(7).permutation(len(y))[: round(0.3 * len(y))]
    fit = np.setdiff1d(np.arange(len(y)), held)
    _assert_measured_on(figures, z[held], y[held], scipy_temperature(z[fit], y[fit]))
    assert figures["fit_set"]["samples"] == len(fit) == 280
    assert figures["test_set"]["samples"] == len(held) == 120
    split = f"--test-fraction 0.3 of {len(y)}, --seed 7"
    assert figures["fit_set"]["rows"] == f"those not held out ({split})"
    assert figures["test_set"]["rows"] == f"held out at random ({split})"
    source = f"{files[0]} and {files[1]}"
    assert proc.stdout.splitlines()[:2] == [
        f"fitted on      280 samples of {source}, those not held out ({split})",
        f"measured on    120 samples of {source}, held out at random ({split})",
    ]
    assert not any("flatters" in note for note in figures["notes"])


def test_fit_on_one_pair_of_files_measure_on_another(held_out: HeldOut, tmp_path: Path) -> None:
    folder, z, y = held_out
    z_test, y_test = overconfident(np.random.default_rng(5), n=250, k=5)
    np.savez(tmp_path / "test.npz", logits=z_test, labels=y_test)
    report = tmp_path / "report.json"
    test_file = str(tmp_path / "test.npz")
    proc = run_cli(
        "calibrate",
        str(folder / "held_out.npz"),
        str(folder / "held_out.npz"),
        "--test",
        test_file,
        test_file,
        "--json",
        str(report),
    )
    figures = _figures_of(proc, report)
    _assert_measured_on(figures, z_test, y_test, scipy_temperature(z, y))
    assert figures["fit_set"] == {
        "source": str(folder / "held_out.npz"),
        "rows": "all",
        "samples": len(y),
        "dropped": 0,
    }
    assert figures["test_set"] == {"source": test_file, "rows": "all", "samples": 250, "dropped": 0}
    assert proc.stdout.splitlines()[1] == f"measured on    250 samples of {test_file}"


def test_the_test_files_are_checked_under_their_own_names(
    held_out: HeldOut, tmp_path: Path
) -> None:
    folder = held_out.folder
    np.save(tmp_path / "seven.npy", np.zeros((10, 7)))
    np.save(tmp_path / "ten.npy", np.arange(10))
    np.save(tmp_path / "five.npy", np.zeros((10, 5)))
    files = [str(folder / "logits.npy"), str(folder / "labels.npy")]
    for options, message in (
        (
            ["--test", str(tmp_path / "seven.npy"), str(tmp_path / "ten.npy")],
            "TEST_LABELS must lie in [0, 7), the classes of TEST_LOGITS",
        ),
        (
            ["--test", str(tmp_path / "seven.npy"), str(folder / "labels.npy")],
            "TEST_LABELS must hold one class per sample (10), got shape (400,)",
        ),
        (
            ["--test", str(tmp_path / "nothing.npy"), str(tmp_path / "ten.npy")],
            f"cannot read TEST_LOGITS {str(tmp_path / 'nothing.npy')!r}: ",
        ),
        (
            ["--test", str(tmp_path / "five.npy"), str(tmp_path / "ten.npy")],
            "TEST_LABELS must lie in [0, 5), the classes of TEST_LOGITS",
        ),
        (
            ["--test-fraction", "0.001"],
            "--test-fraction 0.001 of 400 samples leaves no sample to measure on",
        ),
        (
            ["--test-fraction", "0.999"],
            "--test-fraction 0.999 of 400 samples leaves no sample to fit on",
        ),
    ):
        proc = run_cli("calibrate", *files, *options)
        assert proc.returncode == 2, (options, proc.stdout)
        assert proc.stdout == ""
        assert proc.stderr.startswith(f"xpsoftmax calibrate: error: {message}"), proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
    np.save(tmp_path / "seven_labels.npy", np.arange(10) % 7)
    proc = run_cli(
        "calibrate",
        *files,
        "--test",
        str(tmp_path / "seven.npy"),
        str(tmp_path / "seven_labels.npy"),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "xpsoftmax calibrate: error: TEST_LOGITS hold 7 classes and LOGITS 5: the two sets "
        "must share their classes"
    )


def rising_ece_case(rng: np.random.Generator, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Three classes, the first winning with the probability it is given at T = 1 (an ECE near
    0), the wrong labels all at the least likely class: the NLL asks for T > 1, which leaves the
    winners less confident than they are right."""
    lead = rng.uniform(2.5, 3.5, n)
    z = np.stack([lead, np.zeros(n), np.full(n, -6.0)], axis=1)
    winner = special.softmax(z, axis=1)[:, 0]
    return z, np.where(rng.random(n) < winner, 0, 2)


def test_an_ece_rising_as_the_nll_falls_is_said_in_one_line(tmp_path: Path) -> None:
    z, y = rising_ece_case(np.random.default_rng(0))
    t = scipy_temperature(z, y)
    before, after = numpy_error(z, y, 15, "l1"), numpy_error(z, y, 15, "l1", t)
    assert after > before  # the case is what it says
    assert mean_nll(t, z, y) < mean_nll(1.0, z, y)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    report = tmp_path / "report.json"
    proc = run_cli(
        "calibrate", str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--json", str(report)
    )
    figures = _figures_of(proc, report)
    _assert_measured_on(figures, z, y, t)
    rose = [line for line in proc.stdout.splitlines() if "ECE rose" in line]
    assert rose == [
        (
            f"note: the ECE rose ({before:.4f} -> {after:.4f}) while the NLL fell: T minimises the "
            "NLL, which also scores how unlikely the wrong predictions made their labels, and can "
            "leave the winners less confident than they are right; the ECE looks only at the "
            "winners, in bins of few samples (600 in 15 here), so it also moves by chance"
        )
    ]
    assert rose[0].removeprefix("note: ") in figures["notes"]


def test_no_such_line_when_the_ece_falls(held_out: HeldOut) -> None:
    folder, z, y = held_out
    t = scipy_temperature(z, y)
    assert numpy_error(z, y, 15, "l1", t) < numpy_error(z, y, 15, "l1")
    proc = run_cli("calibrate", str(folder / "logits.npy"), str(folder / "labels.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "ECE rose" not in proc.stdout


def test_progress_on_a_large_input(tmp_path: Path) -> None:
    z, y = overconfident(np.random.default_rng(3), n=1100, k=1000)
    np.save(tmp_path / "z.npy", z.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    proc = run_cli("calibrate", str(tmp_path / "z.npy"), str(tmp_path / "y.npy"))
    assert proc.returncode == 0, proc.stderr
    assert "2/2" in proc.stderr  # tqdm's count of the two steps, on stderr only
    assert "2/2" not in proc.stdout


def _bad_inputs(folder: Path) -> dict[str, tuple[str, str]]:
    (folder / "text.npy").write_text("not an array")
    np.save(folder / "flat.npy", np.zeros(7))
    np.save(folder / "empty.npy", np.zeros((0, 5)))
    np.save(folder / "short.npy", np.zeros(3, dtype=np.int64))
    np.save(folder / "halves.npy", np.full(400, 0.5))
    np.save(folder / "big.npy", np.full(400, 9))
    np.savez(folder / "two.npz", a=np.zeros(2), b=np.zeros(2))
    return {
        "missing file": ("nothing.npy", "labels.npy"),
        "unknown format": ("labels.json", "labels.npy"),
        "not an npy": ("text.npy", "labels.npy"),
        "one-d logits": ("flat.npy", "labels.npy"),
        "no samples": ("empty.npy", "empty.npy"),
        "labels too short": ("logits.npy", "short.npy"),
        "labels not integers": ("logits.npy", "halves.npy"),
        "labels out of range": ("logits.npy", "big.npy"),
        "npz without a name": ("two.npz", "labels.npy"),
    }


def test_bad_files_give_one_line_and_status_2(held_out: HeldOut) -> None:
    folder = held_out.folder
    (folder / "labels.json").write_text("[]")
    for case, (logits, labels) in _bad_inputs(folder).items():
        proc = run_cli("calibrate", str(folder / logits), str(folder / labels))
        assert proc.returncode == 2, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, case
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (case, lines)
        assert lines[0].startswith("xpsoftmax calibrate: error:"), (case, lines)
        assert proc.stdout == ""


BLOCKER = """
import sys

class _Blocker:
    '''Makes the named top-level modules look uninstalled.'''

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {names!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""


@pytest.mark.parametrize(
    ("missing", "command"),
    [
        ("mpmath", ["compare", "--quick"]),
        ("tqdm", ["compare", "--quick", "--backends", "numpy"]),
        ("matplotlib", ["calibrate", "logits.npy", "labels.npy", "--plot", "out.png"]),
    ],
)
def test_a_missing_extra_says_what_to_install(
    held_out: HeldOut, missing: str, command: list[str]
) -> None:
    folder = held_out.folder
    args = [str(folder / a) if a.endswith((".npy", ".png")) else a for a in command]
    proc = run_cli(*args, prelude=BLOCKER.format(names={missing}))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "install xpsoftmax[cli]" in proc.stderr
    assert missing in proc.stderr


#: What a base install (``pip install xpsoftmax``) lacks: the cli extra and every framework.
NOT_IN_A_BASE_INSTALL = {
    "mpmath",
    "scipy",
    "tqdm",
    "matplotlib",
    "jax",
    "jaxlib",
    "torch",
    "dask",
    "distributed",
    "array_api_strict",
    "cupy",
}


def run_base(*args: str) -> subprocess.CompletedProcess[str]:
    """``xpsoftmax ARGS`` with only what a base install has importable."""
    return run_cli(*args, prelude=BLOCKER.format(names=NOT_IN_A_BASE_INSTALL))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["compare", "calibrate", "--version"]),
        (["calibrate", "--help"], ["LOGITS", "LABELS", "--drop-nonfinite"]),
        (["compare", "--help"], ["--quick", "--wide"]),
    ],
    ids=["help", "calibrate-help", "compare-help"],
)
def test_help_on_a_base_install(args: list[str], expected: list[str]) -> None:
    proc = run_base(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    for word in expected:
        assert word in proc.stdout


def test_version_on_a_base_install() -> None:
    import xpsoftmax

    proc = run_base("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"xpsoftmax {xpsoftmax.__version__}"


def test_calibrate_on_a_base_install(held_out: HeldOut) -> None:
    folder, z, y = held_out
    report = folder / "base.json"
    proc = run_base(
        "calibrate", str(folder / "logits.npy"), str(folder / "labels.npy"), "--json", str(report)
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    figures = json.loads(report.read_text())
    np.testing.assert_allclose(figures["temperature"], scipy_temperature(z, y), rtol=1e-6)
    assert f"{figures['temperature']:.6g}" in proc.stdout


@pytest.mark.parametrize(
    ("command", "needs"),
    [
        (["compare", "--quick"], "mpmath"),
        (["calibrate", "logits.npy", "labels.npy", "--plot", "out.png"], "matplotlib"),
    ],
    ids=["compare", "calibrate-plot"],
)
def test_what_needs_the_extra_says_so_on_a_base_install(
    held_out: HeldOut, command: list[str], needs: str
) -> None:
    folder = held_out.folder
    args = [str(folder / a) if a.endswith((".npy", ".png")) else a for a in command]
    proc = run_base(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        f"xpsoftmax: error: the command line needs {needs}, which is not installed; "
        'install xpsoftmax[cli] (pip install "xpsoftmax[cli]")'
    )


def _with_nonfinite(folder: Path, z: np.ndarray, y: np.ndarray) -> dict[str, tuple[str, str]]:
    """Files whose rows 3 and 7 are bad: a NaN logit, an infinite logit, a NaN label (CSV)."""
    nan_logits, inf_logits = z.copy(), z.copy()
    nan_logits[3, 1], nan_logits[7, 0] = np.nan, np.nan
    inf_logits[3, 2], inf_logits[7, 4] = np.inf, -np.inf
    np.save(folder / "nan_logits.npy", nan_logits)
    np.save(folder / "inf_logits.npy", inf_logits)
    labels = y.astype(np.float64)
    labels[[3, 7]] = np.nan
    np.savetxt(folder / "nan_labels.csv", labels, delimiter=",", fmt="%.17g")
    return {
        "NaN logit": ("nan_logits.npy", "labels.npy"),
        "infinite logit": ("inf_logits.npy", "labels.npy"),
        "NaN label": ("logits.npy", "nan_labels.csv"),
    }


@pytest.mark.parametrize("case", ["NaN logit", "infinite logit", "NaN label"])
def test_nonfinite_samples_are_bad_input(held_out: HeldOut, case: str) -> None:
    folder, z, y = held_out
    logits, labels = _with_nonfinite(folder, z, y)[case]
    proc = run_cli("calibrate", str(folder / logits), str(folder / labels))
    assert proc.returncode == 2, proc.stdout
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        f"xpsoftmax calibrate: error: 2 of {len(y)} samples hold a NaN or infinite logit or "
        "label, the first in row 3 (counting from 0); pass --drop-nonfinite to leave them out"
    )


@pytest.mark.parametrize("case", ["NaN logit", "infinite logit", "NaN label"])
def test_drop_nonfinite_counts_the_samples_used(
    held_out: HeldOut, case: str, tmp_path: Path
) -> None:
    folder, z, y = held_out
    logits, labels = _with_nonfinite(folder, z, y)[case]
    report = tmp_path / "report.json"
    proc = run_cli(
        "calibrate",
        str(folder / logits),
        str(folder / labels),
        "--drop-nonfinite",
        "--json",
        str(report),
    )
    assert proc.returncode == 0, proc.stderr
    kept = np.ones(len(y), dtype=bool)
    kept[[3, 7]] = False
    z_kept, y_kept = z[kept], y[kept]
    figures = json.loads(report.read_text())
    assert figures["fit_set"]["samples"] == len(y) - 2
    assert figures["fit_set"]["dropped"] == 2
    t = scipy_temperature(z_kept, y_kept)
    np.testing.assert_allclose(figures["temperature"], t, rtol=1e-6)
    np.testing.assert_allclose(figures["before"]["nll"], mean_nll(1.0, z_kept, y_kept), rtol=1e-12)
    accuracy = np.mean(z_kept.argmax(axis=-1) == y_kept)
    assert figures["before"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)
    first = proc.stdout.splitlines()[0]
    assert first == (
        f"fitted on      {len(y) - 2} samples of {folder / logits} and {folder / labels} "
        f"(2 of {len(y)} dropped: NaN or infinite)"
    )


def test_drop_nonfinite_with_nothing_left(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.full((3, 4), np.nan))
    np.save(tmp_path / "y.npy", np.zeros(3, dtype=np.int64))
    proc = run_cli(
        "calibrate", str(tmp_path / "z.npy"), str(tmp_path / "y.npy"), "--drop-nonfinite"
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "xpsoftmax calibrate: error: all 3 samples hold a NaN or infinite logit or label"
    )
