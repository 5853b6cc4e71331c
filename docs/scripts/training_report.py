"""Measure training with xpsoftmax beside each framework's own op: the Performance page's Training data.

Run from the repository root (the docs build never runs it; its outputs are committed)::

    python docs/scripts/training_report.py             # a few minutes on 2 cores
    python docs/scripts/training_report.py --rounds 3  # quicker, noisier

It writes, under ``docs/_generated/``:

* ``training_table.rst``: time ratios xpsoftmax / native (forward, forward + backward) and
  the memory kept for the backward pass, with their targets;
* ``training_ratios.png``: the same as bars against the targets.

Cases come from ``asv_bench/benchmarks/training.py``, as in the asv and pytest-benchmark
suites. Every time ratio is a best of interleaved rounds in one process (each round runs
xpsoftmax, then the native op), so a busy machine slows both alike; float32 throughout.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_generated"


# The cases are the asv suite's (a plain module there, importable by path).
sys.path.insert(0, str(ROOT / "asv_bench" / "benchmarks"))
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
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - case (float32)",
        "     - xpsoftmax / native",
        "     - target",
        "     - xpsoftmax, native",
    ]
    for row in rows:
        met = "" if row["ratio"] <= row["target"] else " (not met)"
        lines += [
            f"   * - {row['label']}",
            f"     - {row['ratio']:.2f}{met}",
            f"     - <= {row['target']:g}",
            f"     - {row['detail']}",
        ]
    (OUT / "training_table.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.2))
    positions = range(len(rows))
    colours = ["tab:green" if r["ratio"] <= r["target"] else "tab:red" for r in rows]
    axes.barh(list(positions), [r["ratio"] for r in rows], color=colours)
    axes.scatter([r["target"] for r in rows], list(positions), marker="|", s=300, color="k")
    axes.set_yticks(list(positions), [r["label"] for r in rows], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("xpsoftmax / native (bars); target (black ticks)")
    axes.set_title("Training: time and memory kept for the backward pass")
    figure.tight_layout()
    figure.savefig(OUT / "training_ratios.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (best of)")
    args = parser.parse_args(argv)
    write(measure(args.rounds))


if __name__ == "__main__":
    main()
