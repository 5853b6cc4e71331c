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
import sys
from pathlib import Path

import numpy as np
import pytest
from test_calibration import mean_nll, numpy_error, overconfident, scipy_temperature

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, prelude: str = "") -> subprocess.CompletedProcess[str]:
    """``xpsoftmax ARGS`` in a fresh interpreter, after `prelude` (Python source) has run."""
    code = (
        f"{prelude}\nimport sys\nfrom xpsoftmax.__main__ import main\nsys.exit(main(sys.argv[1:]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An over-confident model's logits and labels, saved in each format the command reads."""
    folder = tmp_path_factory.mktemp("calibrate")
    z, y = overconfident(np.random.default_rng(12), n=400, k=5)
    np.save(folder / "logits.npy", z)
    np.save(folder / "labels.npy", y)
    np.savez(folder / "held_out.npz", logits=z, labels=y)
    np.savetxt(folder / "logits.csv", z, delimiter=",", fmt="%.17g", header="a,b,c,d,e")
    np.savetxt(folder / "labels.csv", y, delimiter=",", fmt="%d")
    return {"folder": folder, "z": z, "y": y}


@pytest.mark.parametrize(
    "files",
    [("logits.npy", "labels.npy"), ("held_out.npz", "held_out.npz"), ("logits.csv", "labels.csv")],
    ids=["npy", "npz", "csv"],
)
def test_figures_on_each_format(held_out: dict[str, object], files: tuple[str, str]) -> None:
    folder, z, y = held_out["folder"], held_out["z"], held_out["y"]
    assert isinstance(folder, Path)
    assert isinstance(z, np.ndarray)
    assert isinstance(y, np.ndarray)
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


def test_n_bins_and_no_optimum(held_out: dict[str, object], tmp_path: Path) -> None:
    z = held_out["z"]
    assert isinstance(z, np.ndarray)
    np.save(tmp_path / "right.npy", z.argmax(axis=-1))  # every label the winner: T -> 0
    report = tmp_path / "report.json"
    proc = run_cli(
        "calibrate",
        str(held_out["folder"] / "logits.npy"),  # type: ignore[operator]
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
    assert "T = 0" in figures["note"]
    assert len(figures["before"]["curve"]["count"]) == 4
    assert figures["before"]["accuracy"] == 1.0


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


def test_bad_files_give_one_line_and_status_2(held_out: dict[str, object]) -> None:
    folder = held_out["folder"]
    assert isinstance(folder, Path)
    (folder / "labels.json").write_text("[]")
    for case, (logits, labels) in _bad_inputs(folder).items():
        proc = run_cli("calibrate", str(folder / logits), str(folder / labels))
        assert proc.returncode == 2, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, case
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, (case, lines)
        assert lines[0].startswith("xpsoftmax calibrate: error:"), (case, lines)
        assert proc.stdout == ""


def test_bad_options_are_usage_errors(held_out: dict[str, object]) -> None:
    folder = held_out["folder"]
    files = [str(folder / "logits.npy"), str(folder / "labels.npy")]  # type: ignore[operator]
    for options in (["--n-bins", "0"], ["--n-bins", "x"], ["--json", "/no/such/folder/f.json"]):
        proc = run_cli("calibrate", *files, *options)
        assert proc.returncode == 2, options
        assert "Traceback" not in proc.stderr
        assert "usage:" in proc.stderr


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
    held_out: dict[str, object], missing: str, command: list[str]
) -> None:
    folder = held_out["folder"]
    assert isinstance(folder, Path)
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


def test_calibrate_on_a_base_install(held_out: dict[str, object]) -> None:
    folder, z, y = held_out["folder"], held_out["z"], held_out["y"]
    assert isinstance(folder, Path)
    assert isinstance(z, np.ndarray)
    assert isinstance(y, np.ndarray)
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
    held_out: dict[str, object], command: list[str], needs: str
) -> None:
    folder = held_out["folder"]
    assert isinstance(folder, Path)
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
def test_nonfinite_samples_are_bad_input(held_out: dict[str, object], case: str) -> None:
    folder, z, y = held_out["folder"], held_out["z"], held_out["y"]
    assert isinstance(folder, Path)
    assert isinstance(z, np.ndarray)
    assert isinstance(y, np.ndarray)
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
    held_out: dict[str, object], case: str, tmp_path: Path
) -> None:
    folder, z, y = held_out["folder"], held_out["z"], held_out["y"]
    assert isinstance(folder, Path)
    assert isinstance(z, np.ndarray)
    assert isinstance(y, np.ndarray)
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
    assert figures["samples"] == len(y) - 2
    assert figures["dropped"] == 2
    t = scipy_temperature(z_kept, y_kept)
    np.testing.assert_allclose(figures["temperature"], t, rtol=1e-6)
    np.testing.assert_allclose(figures["before"]["nll"], mean_nll(1.0, z_kept, y_kept), rtol=1e-12)
    accuracy = np.mean(z_kept.argmax(axis=-1) == y_kept)
    assert figures["before"]["accuracy"] == pytest.approx(accuracy, rel=1e-12)
    first = proc.stdout.splitlines()[1]
    assert first == f"{len(y) - 2} samples used (2 of {len(y)} dropped: NaN or infinite), 5 classes"


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
