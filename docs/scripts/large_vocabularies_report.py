"""Measure linear_cross_entropy on a GPT-2 head: the Large vocabularies page's table and plot.

Run from the repository root (the docs build never runs it; its outputs are committed)::

    python docs/scripts/large_vocabularies_report.py          # every row, 3 rounds; ~30 min, 2 idle cores
    python docs/scripts/large_vocabularies_report.py --rows 1 6 --skip-plot

It writes, under ``docs/_generated/``:

* ``large_vocabularies_table.rst``: per row of the target table, the time and loss-memory
  ratios of xpsoftmax to each peer, with the absolute figures and the targets;
* ``large_vocabularies_memory.png``: loss memory against tokens for the materialised
  reference, PyTorch's chunked path and xpsoftmax on PyTorch, JAX and NumPy.

Cases come from ``asv_bench/benchmarks/linear_cross_entropy.py``, as in the asv and
pytest-benchmark suites: float32, 4096 tokens, D = 768, V = 50,257, forward + backward (the
loss alone on the plain-evaluation rows). Times are the best of interleaved rounds in one
process (each round runs both cases of a row once). Loss memory is the peak resident memory
above the inputs and their gradients, in a fresh process per case; for JAX the table gives
XLA's temporary bytes (``memory_analysis()``) instead. The machine's load average is printed
with each row and kept beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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

#: Rows of the target table (issue 33): (label, framework, path, peer's label, peer's
#: implementation, time target, memory target).
ROWS = [
    ("PyTorch eager", "torch", "train", "materialised loss", "reference", 0.9, 0.1),
    ("PyTorch eager", "torch", "train", "PyTorch's chunked path", "chunked", 0.8, 1.0),
    ("torch.compile", "torch.compile", "train", "compiled reference", "reference", 1.0, 0.1),
    ("JAX, jit of value_and_grad", "jax", "train", "optax, materialised", "reference", 1.0, 0.15),
    (
        "NumPy VJP",
        "numpy",
        "train",
        "NumPy materialised",
        "reference",
        0.9,
        0.1,
    ),
    ("PyTorch eager, half ignored", "torch", "ignored", "materialised loss", "reference", 0.6, 0.1),
    ("PyTorch, no gradients", "torch", "forward", "its forward", "reference", 1.0, 0.1),
    ("JAX jit, no gradients", "jax", "forward", "its forward", "reference", 1.0, 0.1),
]


def cached_memory(
    framework: str,
    implementation: str,
    shape: tuple[int, int, int],
    measure: bool = True,
    path: str = "train",
) -> int | None:
    """Loss memory of a case (fresh process), read from or added to the cache file; None where
    it is not in the cache and `measure` is False."""
    cache = json.loads(CACHE.read_text()) if CACHE.exists() else {}
    key = f"{framework}/{implementation}/{'x'.join(map(str, shape))}"
    if path != "train":
        key += f"/{path}"
    if key not in cache and not measure:
        return None
    if key not in cache:
        cache[key] = cases.loss_memory(framework, implementation, shape, path=path)
        CACHE.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return int(cache[key])


def load_average() -> str:
    """The machine's load averages over 1, 5 and 15 minutes, as the kernel reports them."""
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def measure(rounds: int, selected: list[int]) -> None:
    """The selected rows of the table (1-based), each saved and the table rewritten after it."""
    shape = cases.SIZES["gpt2"]
    for label, framework, path, peer, implementation, time_target, memory_target in (
        ROWS[i - 1] for i in selected
    ):
        print(f"timing {label} / {peer} ...", flush=True)
        names = {"xpsoftmax": "xpsoftmax", peer: implementation}
        runs = {n: cases.make(framework, impl, "gpt2", path=path) for n, impl in names.items()}
        load = load_average()
        times = cases.best_times(runs, rounds)
        del runs
        if framework == "jax":
            memory = {n: cases.xla_temp_bytes(impl, "gpt2", path) for n, impl in names.items()}
        else:
            memory = {
                n: cached_memory(framework, impl, shape, path=path) for n, impl in names.items()
            }
        rows = json.loads(MEASURED.read_text()) if MEASURED.exists() else {}
        key = f"{label} / {peer}"
        rows[key] = {
            "label": key,
            "time": times["xpsoftmax"] / times[peer],
            "time_target": time_target,
            "times": f"{times['xpsoftmax']:.2f} / {times[peer]:.2f} s",
            "memory": memory["xpsoftmax"] / memory[peer],
            "memory_target": memory_target,
            "memories": f"{memory['xpsoftmax'] / 2**20:.0f} / {memory[peer] / 2**20:.0f} MiB",
            "what": "XLA temp" if framework == "jax" else "peak RSS",
            "load": load,
        }
        print(rows[key], flush=True)
        MEASURED.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        write_table()


def write_table() -> None:
    """The table of the rows measured so far; the others say they were not measured. Short
    cells, so that it fits the page: the absolute figures are xpsoftmax's, then the peer's."""
    measured = json.loads(MEASURED.read_text()) if MEASURED.exists() else {}
    header = ["xpsoftmax on", "beside", "time", "seconds", "memory", "MiB"]
    cells = []
    for label, _, _, peer, _, time_target, memory_target in ROWS:
        row = measured.get(f"{label} / {peer}")
        if row is None:
            cells.append([label, peer] + ["not measured"] * 4)
            continue
        t_met = "" if row["time"] <= time_target else ", not met"
        m_met = "" if row["memory"] <= memory_target else ", not met"
        what = " (XLA temp)" if row["what"] == "XLA temp" else ""
        cells.append(
            [
                label,
                peer,
                f"{row['time']:.2f}x (<= {time_target:g}{t_met})",
                row["times"].removesuffix(" s"),
                f"{row['memory']:.3f}x (<= {memory_target:g}{m_met})",
                row["memories"].removesuffix(" MiB") + what,
            ]
        )
    lines = rst_tables.list_table(header, cells, [":widths: 26 20 11 14 13 16"])
    loads = [float(row["load"].split(" / ")[0]) for row in measured.values() if "load" in row]
    if loads:
        load = f"{min(loads):.1f} to {max(loads):.1f} (on {os.cpu_count()} cores)"
        lines += ["", f"The machine's 1-minute load average while the rows were timed: {load}."]
    rst_tables.write("large_vocabularies_table.rst", lines)


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
        "--rows",
        type=int,
        nargs="+",
        default=list(range(1, len(ROWS) + 1)),
        help=f"table rows to measure (1-{len(ROWS)})",
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
