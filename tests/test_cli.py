"""Tests of ``xpsoftmax compare``, the command line, run as users run it: in a subprocess.

One ``--quick`` run (every installed CPU backend, with --json and --plot) is shared by the tests of its
table, its JSON file and its figure. The exit status on disagreement is checked on a real failing cell:
the textbook ``x - max - log(sum(exp(x - max)))`` passed as xpsoftmax's log_softmax through the internal
`measure` API, which loses all relative accuracy at the dominant logit of the command's inputs.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import run_python
from xpsoftmax.backends.cli import compare
from xpsoftmax.backends.cli._compare_cells import measure

from xpsoftmax import backends

QUICK_FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m xpsoftmax ARGS`` in a fresh interpreter, output captured."""
    env = {**os.environ, "PYTHONWARNINGS": "error::DeprecationWarning:xpsoftmax"}
    return run_python("-m", "xpsoftmax", *args, env=env, timeout=timeout)


def run_small(*args: str) -> subprocess.CompletedProcess[str]:
    """``xpsoftmax compare ARGS`` on one function, dtype and timing sample: seconds."""
    small = ("--functions", "softmax", "--dtypes", "float64", "--repeats", "1", "--no-progress")
    return run_cli("compare", *args, *small, timeout=120)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``compare --quick`` run with --json and --plot; its process, JSON document and PNG path."""
    folder = tmp_path_factory.mktemp("compare")
    json_path, png_path = folder / "compare.json", folder / "compare.png"
    proc = run_cli(
        "compare", "--quick", "--repeats", "2", "--json", str(json_path), "--plot", str(png_path)
    )
    document = json.loads(json_path.read_text()) if json_path.exists() else None
    return {"proc": proc, "json": document, "png": png_path}


def _quick_variants() -> list[str]:
    return [v.id for v in backends.variants(include_gpu=False) if v.id != "torch.compile"]


def test_quick_prints_the_table(quick_run: dict[str, Any]) -> None:
    proc = quick_run["proc"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    header, units = lines[0].split(), lines[1].split()
    assert " ".join(header) == "backend dtype function size error bound own error time status"
    assert units == ["(eps)", "(eps)", "(eps)", "ours/own"]  # every number with its unit
    assert set(lines[2].replace(" ", "")) == {"-"}
    body = [
        line.split() for line in lines[3:] if line.split() and line.split()[-1] in ("ok", "FAIL")
    ]
    # The time ratio, "1.7x", and at 16x64 the mark of the note on per-call cost.
    assert all(re.fullmatch(r"[0-9.e+]+x\[\d\]", r[-2]) for r in body)
    rows = {(r[0], r[1], r[2]) for r in body}
    for variant_id in _quick_variants():
        for dtype in ("float32", "float64"):
            for function in QUICK_FUNCTIONS:
                assert (variant_id, dtype, function) in rows
    assert all(r[-1] == "ok" for r in body)
    assert "within the accuracy bounds (docs: Specification, Accuracy)" in proc.stdout


def _marks_of(cell: dict[str, Any], line: list[str]) -> tuple[str, str]:
    """(the mark after the own error, the mark after the time ratio) of a table row."""
    own, time = line[6], line[7]
    return own.removeprefix(f"{cell['their_error']:.3g}"), time[time.index("x") + 1 :]


def test_each_row_carries_its_bound_and_the_marks_of_its_notes(quick_run: dict[str, Any]) -> None:
    proc, document = quick_run["proc"], quick_run["json"]
    rows = {
        tuple(line.split()[:3]): line.split()
        for line in proc.stdout.splitlines()
        if line.split() and line.split()[-1] == "ok"
    }
    notes = proc.stdout[proc.stdout.index("\nnotes:\n") :]
    lost_mark = re.search(r"\n  (\[\d\]) own error in the millions of eps:", notes)
    per_call_mark = re.search(r"\n  (\[\d\]) time at 16x64: per-call cost, not throughput", notes)
    assert lost_mark is not None, notes
    assert per_call_mark is not None, notes
    assert lost_mark.group(1) != per_call_mark.group(1)
    for cell in document["cells"]:
        line = rows[(cell["variant"], cell["dtype"], cell["function"])]
        assert line[4] == f"{cell['error']:.3g}"
        assert line[5] == f"{cell['bound']:.3g}"  # the bound, without --wide
        assert cell["error"] <= cell["bound"]
        lost = lost_mark.group(1) if cell["their_error"] >= 1e4 else ""
        assert _marks_of(cell, line) == (lost, per_call_mark.group(1))


def test_quick_fits_in_100_columns_and_explains_itself(quick_run: dict[str, Any]) -> None:
    proc, document = quick_run["proc"], quick_run["json"]
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    notes = proc.stdout[proc.stdout.index("\nnotes:\n") :]
    for term in ("error:", "own error:", "time ours/own:"):
        assert f"\n  {term}" in notes, term
    text = " ".join(notes.split())
    assert "in eps: the dtype's machine epsilon" in text
    assert "bound: the error allowed at that entry" in text
    assert "docs/spec.rst, section spec-accuracy" in text
    assert "--wide shows the bound" not in text  # the table shows it
    assert "time at 16x64: per-call cost, not throughput" in text
    # The framework's own log_softmax loses its digits at the dominant row (SciPy's, jax.nn's,
    # torch's): the note that says why is there, and names the function and the docs page.
    lost = {c["function"] for c in document["cells"] if c["their_error"] >= 1e4}
    assert lost == {"log_softmax"}
    assert "] own error in the millions of eps: expected, not a failure (log_softmax)" in text
    assert 'docs/accuracy.rst ("Input families", dominant)' in text


def test_quick_shows_a_progress_bar_on_stderr(quick_run: dict[str, Any]) -> None:
    stderr = quick_run["proc"].stderr
    assert "xpsoftmax compare" in stderr
    assert "cell" in stderr


def test_json_holds_every_figure(quick_run: dict[str, Any]) -> None:
    document = quick_run["json"]
    assert document is not None
    assert document["failures"] == []
    cells = document["cells"]
    assert {(c["variant"], c["dtype"], c["function"]) for c in cells} >= {
        (v, d, f)
        for v in _quick_variants()
        for d in ("float32", "float64")
        for f in QUICK_FUNCTIONS
    }
    for cell in cells:
        for key in (
            "error",
            "bound",
            "their_error",
            "difference",
            "time_ours_s",
            "status",
            "shape",
        ):
            assert key in cell
        assert cell["status"] == "ok"
        assert 0 <= cell["error"] <= cell["bound"]
        assert cell["within"] is True
        assert cell["time_ours_s"] > 0
        if cell["time_theirs_s"] is not None:
            assert math.isclose(cell["ratio"], cell["time_ours_s"] / cell["time_theirs_s"])
    assert "numpy" in document["versions"]
    assert document["settings"]["dtypes"] == ["float32", "float64"]


def test_plot_writes_a_png(quick_run: dict[str, Any]) -> None:
    png: Path = quick_run["png"]
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert png.stat().st_size > 20_000  # a drawn figure, not an empty canvas


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="no-command"),
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["compare", "--dtypes", "float8"], id="unknown-dtype"),
        pytest.param(["compare", "--functions", "softmin"], id="unknown-function"),
        pytest.param(["compare", "--backends", "nonesuch"], id="unknown-backend"),
        pytest.param(["compare", "--sizes", "16by64"], id="bad-size"),
        pytest.param(["compare", "--backends", "jax_jit"], id="unknown-variant"),
        pytest.param(["compare", "--quick", "--full"], id="two-modes"),
        pytest.param(["compare", "--json", "/no/such/folder/out.json"], id="unwritable-json"),
    ],
)
def test_bad_arguments_exit_2_with_usage_and_one_line(args: list[str]) -> None:
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("usage: xpsoftmax")
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr
    assert proc.stdout == ""


#: A calibrate command whose files are not read: its options are checked first.
CALIBRATE = ["calibrate", "logits.npy", "labels.npy"]
SIZE = "argument --sizes: size"
FRACTION = "--test-fraction must lie strictly between 0 and 1, got"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--sizes", "0x64"], f"{SIZE} '0x64': BATCH must be at least 1, got 0"),
        (["compare", "--sizes", "16x0"], f"{SIZE} '16x0': N must be at least 1, got 0"),
        (["compare", "--sizes", "-3x4"], f"{SIZE} '-3x4': BATCH must be at least 1, got -3"),
        (["compare", "--sizes=-3x4"], f"{SIZE} '-3x4': BATCH must be at least 1, got -3"),
        (["compare", "--sizes", "16x64,8x-2"], f"{SIZE} '8x-2': N must be at least 1, got -2"),
        (
            ["compare", "--sizes", "16by64"],
            f"{SIZE} '16by64' has no 'x': write BATCHxN, e.g. 16x64",
        ),
        (["compare", "--sizes", "16x6.4"], f"{SIZE} '16x6.4': N '6.4' is not a whole number"),
        (["compare", "--sizes", "ax64"], f"{SIZE} 'ax64': BATCH 'a' is not a whole number"),
        (["compare", "--sizes", ","], "argument --sizes: no size given"),
        (["compare", "--repeats", "-2"], "--repeats must be at least 1, got -2"),
        (["compare", "--repeats", "0"], "--repeats must be at least 1, got 0"),
        (
            ["compare", "--backends", "jax_jit"],
            (
                "--backends: unknown backend or variant 'jax_jit'; known: numpy, array_api_strict,"
                " jax, torch, dask, cupy, jax.jit, torch.compile, torch:cuda, torch.compile:cuda,"
                " jax:gpu, jax.jit:gpu, array_api_strict:device1"
            ),
        ),
        ([*CALIBRATE, "--n-bins", "0"], "--n-bins must be at least 1, got 0"),
        ([*CALIBRATE, "--n-bins", "x"], "argument --n-bins: invalid int value: 'x'"),
        ([*CALIBRATE, "--json", "/no/such/f.json"], "--json: folder '/no/such' does not exist"),
        ([*CALIBRATE, "--test-fraction", "0"], f"{FRACTION} 0"),
        ([*CALIBRATE, "--test-fraction", "1.5"], f"{FRACTION} 1.5"),
        ([*CALIBRATE, "--test-fraction", "-0.2"], f"{FRACTION} -0.2"),
        (
            [*CALIBRATE, "--seed", "3"],
            "--seed draws the samples of --test-fraction, which is not given",
        ),
        ([*CALIBRATE, "--test", "a.npy"], "argument --test: expected 2 arguments"),
        (
            [*CALIBRATE, "--test", "a.npy", "b.npy", "--test-fraction", "0.5"],
            "argument --test-fraction: not allowed with argument --test",
        ),
    ],
)
def test_each_usage_error_names_its_fault(args: list[str], message: str) -> None:
    """Exit status 2, no output, the subcommand's usage and one line naming the fault."""
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"usage: xpsoftmax {args[0]}")
    assert proc.stderr.strip().splitlines()[-1] == f"xpsoftmax {args[0]}: error: {message}"


def test_help_exits_0_and_states_units() -> None:
    proc = run_cli("compare", "--help", timeout=60)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--quick" in text
    assert "--json" in text
    for words in (
        "counts of entries, e.g. 16x64,256x1024",  # --sizes
        "timing samples per cell",  # --repeats
        "errors in eps of the dtype, times in seconds",  # --json
        "(eps) and both times (microseconds): about 150 characters per line",  # --wide
        "the default table takes about 100",
    ):
        assert words in text, words


def test_the_older_variant_spellings_still_work() -> None:
    proc = run_small("--backends", "jax-jit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines()[3:] if line.endswith("ok")]
    assert [row[:3] for row in rows] == [["jax.jit", "float64", "softmax"]]


def test_a_missing_backend_is_reported_not_an_error() -> None:
    missing = [v for v in backends.all_variants() if not v.available]
    if not missing:
        pytest.skip("every backend and device of the registry is available on this machine")
    absent = missing[0]
    proc = run_small("--backends", f"{absent.id},numpy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"skipped {absent.id}: {absent.unavailable_reason()}" in proc.stdout
    assert any(line.split()[:1] == ["numpy"] for line in proc.stdout.splitlines())


def textbook_log_softmax(x: Any, /, *, axis: int = -1) -> Any:
    """``x - max - log(sum(exp(x - max)))``: rounds to 0 next to a dominant logit."""
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    shifted = x - xp.max(x, axis=axis, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


@pytest.mark.parametrize("variant_id", ["numpy", "torch"])
def test_disagreement_beyond_the_bound_fails_and_names_the_cell(variant_id: str) -> None:
    variant = backends.variant(variant_id)
    bad = measure(variant, "float64", "log_softmax", (4, 16), repeats=1, ours=textbook_log_softmax)
    good = measure(variant, "float64", "log_softmax", (3, 16), repeats=1)
    assert bad.status == "FAIL"
    assert bad.error is not None
    assert bad.bound is not None
    assert bad.error > 1e6 * bad.bound  # all relative accuracy lost at the dominant logit
    assert good.status == "ok"
    out = io.StringIO()
    assert compare.report([good, bad], [], out=out) == 1
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("FAILED: 1 cell")
    assert "beyond the accuracy bounds (docs: Specification, Accuracy)" in last
    assert bad.label in last
    assert good.label not in last
    assert compare.report([good], [], out=io.StringIO()) == 0


def test_the_plot_notes_say_what_the_plot_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plot draws the bounds, the per-call bars hatched and an arrow to the lost digits: its
    notes carry no table marks and never send the reader to --wide for the bound."""
    import matplotlib.figure

    drawn: list[str] = []
    original = matplotlib.figure.Figure.text

    def text(self: Any, x: float, y: float, s: str, *args: Any, **kwargs: Any) -> Any:
        drawn.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "text", text)
    cells = [
        measure(backends.variant("numpy"), "float32", function, (16, 64), repeats=1)
        for function in ("softmax", "log_softmax")
    ]
    from xpsoftmax.backends.cli._compare_plot import plot

    plot(cells, str(tmp_path / "plot.png"), repeats=1)
    notes = " ".join(" ".join(drawn).split())
    assert "bound: the error allowed at that entry" in notes
    assert "own error in the millions of eps" in notes
    assert "time at 16x64: per-call cost, not throughput" in notes
    assert "--wide" not in notes
    assert not re.search(r"\[\d\]", notes)
    assert (tmp_path / "plot.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_crash_of_ours_is_a_failed_cell() -> None:
    def broken(x: Any, /, *, axis: int = -1) -> Any:
        raise RuntimeError("broken on purpose")

    cell = measure(backends.variant("numpy"), "float32", "softmax", (2, 8), repeats=1, ours=broken)
    assert cell.status == "ERROR"
    assert compare.report([cell], [], out=io.StringIO()) == 1
    assert "broken on purpose" in cell.note


def test_wide_shows_every_column_and_its_notes() -> None:
    proc = run_small("--backends", "numpy", "--sizes", "16x64,256x1024", "--wide")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert " ".join(lines[0].split()) == (
        "backend device dtype function size error bound own error diff vs own ours own time status"
    )
    assert lines[1].split() == ["(eps)"] * 4 + ["(us)", "(us)", "ours/own"]
    rows = [line.split() for line in lines[3:5]]
    assert [r[4] for r in rows] == ["16x64", "256x1024"]
    for row in rows:  # microseconds: the time ratio is the ratio of the two
        ours, own, ratio = float(row[9]), float(row[10]), float(row[11].split("x")[0])
        assert ratio == pytest.approx(ours / own, rel=0.06)
    notes = " ".join(proc.stdout.split())
    assert "diff vs own: largest difference" in notes
    assert "ours, own: the best time per call, in microseconds (us)." in notes
    assert "[1] time at 16x64: per-call cost, not throughput" in notes
    assert "At 256x1024 it measures throughput." in notes
    # SciPy's softmax keeps its digits: no note on lost digits when no cell shows any.
    assert "own error in the millions of eps" not in notes
