"""Measure training with xpsoftmax beside each framework's own op: the Performance page's Training data.

Run from the repository root (the docs build never runs it; its outputs are committed)::

    python docs/scripts/training_report.py             # a few minutes on 2 cores
    python docs/scripts/training_report.py --rounds 3  # quicker, noisier

It writes, under ``docs/_generated/``:

* ``training_data.json``: every ratio measured, with its target;
* ``training_table.rst``: time ratios xpsoftmax / native (forward, forward + backward) and
  the memory kept for the backward pass;
* ``training_ratios.png``: the same as labelled bars beside parity.

``--replot`` redraws the table and plot from ``training_data.json`` without measuring.

Cases come from ``asv_bench/benchmarks/training.py``, as in the asv and pytest-benchmark
suites. Every time ratio is a best of interleaved rounds in one process (each round runs
xpsoftmax, then the native op), so a busy machine slows both alike; float32 throughout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_generated"
#: Every figure measured, with the targets the benchmark suites hold; ``--replot`` reads it.
DATA = OUT / "training_data.json"


# The cases are the asv suite's (a plain module there, importable by path).
sys.path.insert(0, str(ROOT / "asv_bench" / "benchmarks"))
sys.path.insert(0, str(ROOT / "docs" / "scripts"))
import rst_tables
import training

#: (label, framework, case, target) of the time ratios.
TIME_TARGETS = [
    ("torch cross-entropy 1024x32000, forward", "torch", "cross_entropy_forward", 1.25),
    ("torch cross-entropy 1024x32000, forward + backward", "torch", "cross_entropy", 1.3),
    ("JAX jit(grad) mean cross-entropy 1024x32000 / optax", "jax", "cross_entropy", 1.2),
    ("torch causal-masked softmax (4, 8, 512, 512), fwd + bwd", "torch", "masked_softmax", 1.5),
    ("JAX jit VJP causal-masked softmax (4, 8, 512, 512)", "jax", "masked_softmax", 1.1),
]


def interleaved(ours: Any, native: Any, rounds: int) -> tuple[float, float]:
    """Best time of each over `rounds` rounds, each round running ours then native."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, run in enumerate((ours, native)):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def measure(rounds: int) -> list[dict[str, Any]]:
    rows = []
    for label, framework, case, target in TIME_TARGETS:
        print(f"timing {label} ...", flush=True)
        ours = training.make(framework, case, "xpsoftmax")
        native = training.make(framework, case, "peer")
        t_ours, t_native = interleaved(ours, native, rounds)
        del ours, native
        rows.append(
            {
                "label": label,
                "ratio": t_ours / t_native,
                "target": target,
                "detail": f"{t_ours * 1e3:.1f} / {t_native * 1e3:.1f} ms",
            }
        )
    for framework in ("torch", "jax"):
        for case in ("cross_entropy", "masked_softmax"):
            ours = training.saved_bytes(framework, case, "xpsoftmax", size="large")
            native = training.saved_bytes(framework, case, "peer", size="large")
            what = "bytes saved" if framework == "torch" else "residual bytes"
            rows.append(
                {
                    "label": f"{framework} {case.replace('_', ' ')}: {what} for backward",
                    "ratio": ours / native,
                    "target": 1.0,
                    "detail": f"{ours / 2**20:.1f} / {native / 2**20:.1f} MiB",
                }
            )
    return rows


def write(rows: list[dict[str, Any]]) -> None:
    """The table (ratios and both sides' figures; the targets stay in the data file) and plot."""
    header = ["case (float32)", "xpsoftmax / native", "xpsoftmax, native"]
    cells = [[row["label"], f"{row['ratio']:.2f}", row["detail"]] for row in rows]
    rst_tables.write("training_table.rst", rst_tables.list_table(header, cells))
    plot(rows)


def plot(rows: list[dict[str, Any]]) -> None:
    """Time ratios and memory ratios in two panels, each bar labelled, parity at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        (
            "time, xpsoftmax / native (below 1: faster)",
            [r for r in rows if "bytes" not in r["label"]],
        ),
        (
            "memory kept for the backward pass, xpsoftmax / native",
            [r for r in rows if "bytes" in r["label"]],
        ),
    ]
    figure, axes = plt.subplots(
        2, 1, figsize=(10, 6.5), gridspec_kw={"height_ratios": [len(g[1]) for g in groups]}
    )
    for axis, (title, group) in zip(axes, groups, strict=True):
        positions = list(range(len(group)))
        ratios = [r["ratio"] for r in group]
        colours = ["tab:green" if ratio <= 1 else "tab:orange" for ratio in ratios]
        axis.barh(positions, ratios, color=colours)
        axis.axvline(1.0, color="black", linewidth=1)
        for position, row in zip(positions, group, strict=True):
            axis.annotate(
                f"{row['ratio']:.2f}  ({row['detail']})",
                (row["ratio"], position),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        axis.set_yticks(positions, [r["label"] for r in group], fontsize=9)
        axis.invert_yaxis()
        axis.set_xlim(0, max(2.0, max(ratios) * 1.6))
        axis.set_title(title, fontsize=10)
    figure.suptitle("Training with xpsoftmax beside each framework's own op (float32)")
    figure.tight_layout()
    figure.savefig(OUT / "training_ratios.png", dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best of)")
    parser.add_argument(
        "--replot", action="store_true", help=f"redraw from {DATA.name}, measuring nothing"
    )
    args = parser.parse_args(argv)
    if args.replot:
        rows = json.loads(DATA.read_text(encoding="utf-8"))["rows"]
    else:
        rows = measure(args.rounds)
        DATA.write_text(json.dumps({"rows": rows}, indent=1) + "\n", encoding="utf-8")
    write(rows)


if __name__ == "__main__":
    main()
