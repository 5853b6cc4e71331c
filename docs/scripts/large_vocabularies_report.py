"""Measure linear_cross_entropy on a GPT-2 head: the Large vocabularies page's table and plot.

Run from the repository root (the docs build never runs it; its outputs are committed)::

    python docs/scripts/large_vocabularies_report.py              # 3 rounds; on an idle 2-core machine ~15 min
    python docs/scripts/large_vocabularies_report.py --rounds 2 --tokens 1024 4096

It writes, under ``docs/_generated/``:

* ``large_vocabularies_table.rst``: per row of the target table, the time and loss-memory
  ratios of xpsoftmax to each peer, with the absolute figures and the targets;
* ``large_vocabularies_memory.png``: loss memory against tokens for the materialised
  reference, PyTorch's chunked path and xpsoftmax on PyTorch, JAX and NumPy.

Cases come from ``asv_bench/benchmarks/linear_cross_entropy.py``, as in the asv and
pytest-benchmark suites: float32, 4096 tokens, D = 768, V = 50,257, forward + backward. Times
are the best of interleaved rounds in one process (each round runs every case of a row once).
Loss memory is the peak resident memory above the inputs and their gradients, in a fresh
process per case; for JAX the table also gives XLA's temporary bytes (``memory_analysis()``).
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
#: Loss memory measured so far, by case, so that the plot reuses the table's 4096-token figures
#: and a rerun after an interruption measures only what is missing.
CACHE = OUT / "large_vocabularies_memory.json"
#: The table's measured rows, by label, so that rows measured by separate runs make one table.
MEASURED = OUT / "large_vocabularies_rows.json"

sys.path.insert(0, str(ROOT / "asv_bench" / "benchmarks"))
sys.path.insert(0, str(ROOT / "docs" / "scripts"))
import linear_cross_entropy as cases
import rst_tables

#: Rows of the target table: (label, framework, [(peer, framework, implementation, time target,
#: memory target)]).
ROWS = [
    (
        "PyTorch forward + backward",
        "torch",
        [
            ("chunked path", "torch", "chunked", 1.0, 1.0),
            ("reference", "torch", "reference", 1.15, 0.1),
        ],
    ),
    (
        "torch.compile forward + backward",
        "torch-compile",
        [("compiled reference", "torch-compile", "reference", 1.15, 0.1)],
    ),
    ("JAX jit(value_and_grad)", "jax", [("reference", "jax", "reference", 1.15, 0.15)]),
    ("NumPy loss + gradients", "numpy", [("NumPy reference", "numpy", "reference", 1.15, 0.1)]),
]


def best_times(runs: dict[str, Any], rounds: int) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def cached_memory(
    framework: str, implementation: str, shape: tuple[int, int, int], measure: bool = True
) -> int | None:
    """Loss memory of a case (fresh process), read from or added to the cache file; None where
    it is not in the cache and `measure` is False."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    key = f"{framework}/{implementation}/{'x'.join(map(str, shape))}"
    if key not in cache and not measure:
        return None
    if key not in cache:
        cache[key] = cases.loss_memory(framework, implementation, shape)
        CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return int(cache[key])


def measure(rounds: int, selected: list[int]) -> None:
    """The selected rows of the table (1-based), each saved and the table rewritten after it."""
    shape = cases.SIZES["gpt2"]
    for label, framework, peers in (ROWS[i - 1] for i in selected):
        print(f"timing {label} ...", flush=True)
        names = {"xpsoftmax": (framework, "xpsoftmax")}
        names.update({peer: (fw, impl) for peer, fw, impl, _, _ in peers})
        runs = {n: cases.make(fw, impl, "gpt2") for n, (fw, impl) in names.items()}
        times = best_times(runs, rounds)
        del runs
        memory: dict[str, Any] = {
            n: cached_memory(fw, impl, shape) for n, (fw, impl) in names.items()
        }
        if framework == "jax":
            memory.update({n: cases.xla_temp_bytes(impl, "gpt2") for n, (_, impl) in names.items()})
        rows = json.loads(MEASURED.read_text()) if MEASURED.exists() else {}
        for peer, _, _, time_target, memory_target in peers:
            rows[f"{label} / {peer}"] = {
                "label": f"{label} / {peer}",
                "time": times["xpsoftmax"] / times[peer],
                "time_target": time_target,
                "times": f"{times['xpsoftmax']:.2f} / {times[peer]:.2f} s",
                "memory": memory["xpsoftmax"] / memory[peer],
                "memory_target": memory_target,
                "memories": f"{memory['xpsoftmax'] / 2**20:.0f} / {memory[peer] / 2**20:.0f} MiB",
                "what": "XLA temp" if framework == "jax" else "peak RSS",
            }
            print(rows[f"{label} / {peer}"], flush=True)
        MEASURED.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        write_table()


def write_table() -> None:
    """The table of the rows measured so far; the others say they were not measured."""
    measured = json.loads(MEASURED.read_text()) if MEASURED.exists() else {}
    header = [
        "GPT-2 head, float32: xpsoftmax / peer",
        "time (target)",
        "xpsoftmax, peer",
        "loss memory (target)",
        "xpsoftmax, peer",
    ]
    cells = []
    for label, _, peers in ROWS:
        for peer, *_ in peers:
            row = measured.get(f"{label} / {peer}")
            if row is None:
                cells.append([f"{label} / {peer}"] + ["not measured"] * 4)
                continue
            t_met = "" if row["time"] <= row["time_target"] else ", not met"
            m_met = "" if row["memory"] <= row["memory_target"] else ", not met"
            cells.append(
                [
                    row["label"],
                    f"{row['time']:.2f} (<= {row['time_target']:g}{t_met})",
                    row["times"],
                    f"{row['memory']:.3f} (<= {row['memory_target']:g}{m_met})",
                    f"{row['memories']} ({row['what']})",
                ]
            )
    rst_tables.write("large_vocabularies_table.rst", rst_tables.list_table(header, cells))


#: (label, framework, implementation, marker, line style): lines that coincide (ours on PyTorch
#: and NumPy hold the same blocks) stay visible by their markers and dashes.
PLOTTED = [
    ("PyTorch reference", "torch", "reference", "o", "-"),
    ("PyTorch chunked path", "torch", "chunked", "s", "-"),
    ("xpsoftmax, PyTorch", "torch", "xpsoftmax", "^", "-"),
    ("xpsoftmax, JAX", "jax", "xpsoftmax", "D", "-"),
    ("xpsoftmax, NumPy", "numpy", "xpsoftmax", "x", "--"),
]


def plot(token_counts: list[int], measure: bool) -> None:
    """The plot; with `measure` False, of the points already in the cache only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, d, v = cases.SIZES["gpt2"]
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for label, framework, implementation, marker, style in PLOTTED:
        print(f"memory of {label} ...", flush=True)
        points = [
            (n, cached_memory(framework, implementation, (n, d, v), measure)) for n in token_counts
        ]
        measured = [(n, m / 2**20) for n, m in points if m is not None]
        if measured:
            points_mib = zip(*measured, strict=True)
            axes.plot(*points_mib, marker=marker, linestyle=style, markersize=7, label=label)
    logits = [n * v * 4 / 2**20 for n in token_counts]
    axes.plot(token_counts, logits, color="grey", linestyle=":", label="one float32 logits array")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xlabel("tokens (D = 768, V = 50,257, float32)")
    axes.set_ylabel("loss memory, MiB (peak above inputs and gradients)")
    axes.set_title("Memory of the loss and its gradients, forward + backward")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(OUT / "large_vocabularies_memory.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (best of)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1, 2, 3, 4], help="table rows to measure (1-4)"
    )
    parser.add_argument("--skip-table", action="store_true", help="the plot only")
    parser.add_argument("--skip-plot", action="store_true", help="the table only")
    parser.add_argument(
        "--cached-only", action="store_true", help="plot only the points already measured"
    )
    args = parser.parse_args(argv)
    if not args.skip_table:
        measure(args.rounds, args.rows)
    write_table()
    if not args.skip_plot:
        plot(args.tokens, measure=not args.cached_only)


if __name__ == "__main__":
    main()
