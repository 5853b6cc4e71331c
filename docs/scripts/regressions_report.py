"""Time the history of main with asv and plot the headline ratios (xpsoftmax's time / the
peer's) over it.

Run from the repository root; the docs build never runs it, its outputs are committed::

    python docs/scripts/regressions_report.py --run              # 0.1.0 to today, then plot
    python docs/scripts/regressions_report.py --run 7a8b9db..main   # every commit of a range
    python docs/scripts/regressions_report.py                    # plot what asv has already

``--run`` times, with ``asv run --bench "Headline|Peers"`` in asv's own environments (made once,
under ``asv_bench/env``), the commits of main that landed work: 0.1.0, every merge since, the
last commit of every day, and main's tip; or every first-parent commit of a range ``A..B``.
Commits asv has already timed on this machine are skipped, so a rerun only adds the new ones.
asv prints its progress, a line per benchmark and commit.

The plot reads every ``asv_bench/results/<machine>/<commit>-<environment>.json`` holding the
``Headline`` benchmark, xpsoftmax's times, and ``Peers``, the peers' (asv's results format
2: ``result_columns`` names what each entry of a benchmark's list holds; ``result`` and
``params`` are the product of the parameter values and the times in that order) and writes, under
``docs/_generated/``:

* ``regressions_history.png``: one panel per framework, a line per function and size;
* ``regressions_history.csv``: the ratios plotted, one row per commit and case;
* ``regressions_history_table.rst``: the page's table, a row per commit, of the ratios of the
  cases whose slowdown and repair the history shows (`TABLE_CASES`).

A ratio and not a time: the peer runs in the same environment at the same moment, so a busier
machine or a new framework release moves both, and the ratio moves only when xpsoftmax does.
Only commits of the branch (``--branch``, default main; results of other branches, from
``asv continuous`` say, are left out) are drawn, in the branch's order, the last
``--last`` of them.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_generated"
#: xpsoftmax's times and the peers', with the same parameter tuples (implementation apart).
BENCHMARKS = ("bench_headline.Headline.time_call", "bench_headline.Peers.time_call")
#: The commit released as 0.1.0 (CHANGELOG.md), where the history starts.
RELEASE_0_1_0 = "2fef4421"


def branch_commits(branch: str) -> list[str]:
    """The branch's commits, oldest first, following first parents (merges, not their sides)."""
    out = subprocess.run(
        ["git", "rev-list", "--first-parent", "--reverse", branch],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _git(*args: str) -> list[str]:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def landed(branch: str) -> list[str]:
    """The commits of `branch` that landed work since 0.1.0, oldest first: 0.1.0, every merge,
    the last commit of every day, and the tip."""
    first_parent = _git("rev-list", "--first-parent", "--reverse", f"{RELEASE_0_1_0}..{branch}")
    merges = set(_git("rev-list", "--first-parent", "--merges", f"{RELEASE_0_1_0}..{branch}"))
    days: dict[str, str] = {}
    for line in _git("log", "--first-parent", "--format=%H@%cd", "--date=short", branch):
        commit, day = line.split("@")
        days.setdefault(day, commit)  # newest first: the first seen is the day's last
    chosen = merges | set(days.values()) | {first_parent[-1]} if first_parent else merges
    return _git("rev-parse", RELEASE_0_1_0) + [c for c in first_parent if c in chosen]


def time_with_asv(commits: list[str], rounds: int) -> None:
    """``asv run`` of the headline suite and its peers on `commits`, skipping those timed."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(commits) + "\n")
    print(f"timing {len(commits)} commits with asv ({rounds} rounds each)", flush=True)
    # One thread and one core, as the performance gate times: a jitted JAX call's hand-over
    # to XLA's thread across cores costs a different time in each process (Regressions page).
    sys.path.insert(0, str(ROOT / "asv_bench"))
    import perf_gate

    done = subprocess.run(
        ["asv", "run", "--bench", "Headline|Peers", "--skip-existing-commits",
         "-a", f"rounds={rounds}", f"HASHFILE:{f.name}"],
        cwd=ROOT / "asv_bench",
        env={**os.environ, **perf_gate.ONE_THREAD},
        preexec_fn=perf_gate.on_one_core,
        check=False,
    )  # fmt: skip
    Path(f.name).unlink()
    # asv exits with 2 when a benchmark failed, as today's benchmarks of a function added
    # since do on older commits; anything else is asv's own failure.
    if done.returncode not in (0, 2):
        raise SystemExit(f"asv run failed with status {done.returncode}")


def load(results_dir: Path, machine: str | None = None) -> list[dict[str, Any]]:
    """One record per commit: its hash, date and ``{(variant, function, size): ratio}``.

    With several environments or machines for one commit, the newest file is kept.
    """
    by_commit: dict[str, dict[str, Any]] = {}
    for path in sorted(results_dir.glob("*/*.json")):
        if path.name == "machine.json" or (machine and path.parent.name != machine):
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        # (Results from before the split hold both implementations under Headline alone.)
        entries = [data.get("results", {}).get(name) for name in BENCHMARKS]
        if entries[0] is None:
            continue
        entries = [entry for entry in entries if entry is not None]
        columns = data["result_columns"]
        times: dict[tuple[str, ...], Any] = {}
        for entry in entries:
            params, result = entry[columns.index("params")], entry[columns.index("result")]
            if result is None:  # (failed at that commit)
                continue
            times.update(zip(itertools.product(*params), result, strict=True))
        record = {
            "commit": data["commit_hash"],
            "date": data["date"],
            "started": entries[0][columns.index("started_at")] or 0,
            "ratios": _ratios(times),
        }
        previous = by_commit.get(record["commit"])
        if previous is None or record["started"] >= previous["started"]:
            by_commit[record["commit"]] = record
    return sorted(by_commit.values(), key=lambda r: r["date"])


def _ratios(times: dict[tuple[str, ...], Any]) -> dict[tuple[str, str, str], float]:
    """xpsoftmax / peer for every (variant, function, size) where both ran."""
    # asv's parameter values are repr()'d strings: "'numpy'". Results from before the variants
    # had one set of names spell them with dashes ("jax-jit"): read as today's ("jax.jit").
    plain = {
        (key[0].strip("'").replace("-", "."), *(p.strip("'") for p in key[1:])): value
        for key, value in times.items()
    }
    ratios = {}
    for (variant, function, size, implementation), ours in plain.items():
        peer = plain.get((variant, function, size, "peer"))
        if implementation == "xpsoftmax" and _finite(ours) and _finite(peer):
            ratios[variant, function, size] = ours / peer
    return ratios


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0.0


def write_csv(records: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["commit", "variant", "function", "size", "ratio"])
        for record in records:
            for (variant, function, size), ratio in sorted(record["ratios"].items()):
                writer.writerow([record["commit"][:8], variant, function, size, f"{ratio:.3f}"])


#: The table's columns: the cases whose slowdown and repair the history shows.
TABLE_CASES = {
    ("jax.jit", "log_softmax", "throughput"): "jax.jit log_softmax",
    ("jax.jit", "cross_entropy_grad", "throughput"): "jax.jit cross-entropy gradient",
    ("torch", "softmax", "per_call"): "PyTorch softmax, per call",
    ("numpy", "softmax", "per_call"): "NumPy softmax, per call",
}


def write_table(records: list[dict[str, Any]], name: str) -> None:
    """A list-table of the `TABLE_CASES` ratios, a row per commit, oldest first."""
    import rst_tables

    rows = []
    for record in records:
        day = datetime.datetime.fromtimestamp(record["date"] / 1000, datetime.UTC)
        cells = [f"{record['commit'][:8]} ({day:%Y-%m-%d})"]
        for case in TABLE_CASES:
            ratio = record["ratios"].get(case)
            cells.append("" if ratio is None else f"{ratio:.2f}")
        rows.append(cells)
    header = ["commit", *TABLE_CASES.values()]
    rst_tables.write(name, rst_tables.list_table(header, rows, [":widths: 24 20 24 16 16"]))


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = sorted({key for record in records for key in record["ratios"]})
    variants = list(dict.fromkeys(key[0] for key in cases))
    functions = list(dict.fromkeys(key[1] for key in cases))
    colors = dict(zip(functions, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    styles = {"throughput": "-", "per_call": "--"}
    labels = [record["commit"][:8] for record in records]
    x = list(range(len(records)))

    fig, axes = plt.subplots(1, len(variants), figsize=(3.2 * len(variants) + 1, 4.2), sharey=True)
    axes = [axes] if len(variants) == 1 else list(axes)
    for ax, variant in zip(axes, variants, strict=True):
        for variant_, function, size in cases:
            if variant_ != variant:
                continue
            values = [r["ratios"].get((variant, function, size), math.nan) for r in records]
            ax.plot(
                x,
                values,
                styles.get(size, ":"),
                marker="o",
                ms=3,
                color=colors[function],
                label=f"{function} ({size})",
            )
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_title(variant, fontsize=10)
        ax.set_xticks(x, labels, rotation=70, fontsize=7)
        ax.set_yscale("log")
    axes[0].set_ylabel("time of xpsoftmax / time of the peer")
    handles, names = axes[-1].get_legend_handles_labels()
    for ax in axes[:-1]:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            if name not in names:
                handles.append(handle)
                names.append(name)
    fig.legend(handles, names, loc="center right", fontsize=7)
    fig.suptitle("Headline ratios over commits (oldest left; solid: 256x4096, dashed: 64x10)")
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "asv_bench" / "results")
    parser.add_argument("--machine", help="asv machine name (default: every machine)")
    parser.add_argument("--branch", default="main", help="draw this branch's commits")
    parser.add_argument("--last", type=int, default=40, help="plot at most this many commits")
    parser.add_argument(
        "--run",
        nargs="?",
        const="landed",
        metavar="A..B",
        help="time with asv first: the commits that landed work since 0.1.0 (no value), "
        "or every first-parent commit of a range",
    )
    parser.add_argument("--rounds", type=int, default=2, help="asv rounds per commit (--run)")
    args = parser.parse_args()
    if args.run is not None:
        if args.run == "landed":
            commits = landed(args.branch)
        else:
            commits = _git("rev-list", "--first-parent", "--reverse", args.run)
        if not commits:
            raise SystemExit(f"no commits in {args.run!r}")
        time_with_asv(commits, args.rounds)
    order = {commit: i for i, commit in enumerate(branch_commits(args.branch))}
    records = [r for r in load(args.results, args.machine) if r["commit"] in order]
    records = sorted(records, key=lambda r: order[r["commit"]])[-args.last :]
    if not records:
        raise SystemExit(f"no {BENCHMARKS[0]} results under {args.results}: run asv first")
    OUT.mkdir(parents=True, exist_ok=True)
    write_csv(records, OUT / "regressions_history.csv")
    write_table(records, "regressions_history_table.rst")
    plot(records, OUT / "regressions_history.png")
    print(f"{len(records)} commits -> {OUT / 'regressions_history.png'}")


if __name__ == "__main__":
    main()
