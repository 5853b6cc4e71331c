"""The ``--plot`` figure of ``xpsoftmax compare``: accuracy beside speed, one row per cell, and notes.

Left: the error against the exact oracle of xpsoftmax and of the framework's own function, in eps of
the dtype, with the bound of each cell (spec: Accuracy), on a log scale. Right: the time of
xpsoftmax over the time of the framework's own, where 1 means equally fast (log scale); a ratio at
a small size (per-call cost) is drawn hatched and pale, one at a large size (throughput) solid,
so that the two are never read as one. Under both, the notes the table prints
(`xpsoftmax.backends.cli._compare_notes`). matplotlib is imported here only, with the Agg
backend: the command draws into a file and never needs a display.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

from ._compare_notes import lost_digits, measures_per_call, notes, size_name

if TYPE_CHECKING:
    from ._compare_cells import Cell

# Errors of 0 (exact) cannot sit on a log axis: they are drawn at this floor, labelled "0 (exact)".
_FLOOR = 1e-2
# Infinite errors (a NaN or an overflow where the exact value is finite) are drawn here, as "inf".
_CEILING = 1e17
#: Characters per line of the notes under the figure.
_NOTE_WIDTH = 150


def _on_log_axis(value: float | None) -> float:
    if value is None:
        return math.nan
    return min(max(value, _FLOOR), _CEILING)


#: The accuracy panel's marks: (figure of a cell, marker, size, colour, legend, drawn above).
_MARKS = (
    ("their_error", "s", 22, "tab:orange", "framework's own function", 3),
    ("error", "o", 22, "tab:blue", "xpsoftmax", 4),
    ("bound", "|", 120, "black", "bound (docs/spec.rst, spec-accuracy)", 2),
)


def _accuracy_panel(acc: Any, cells: list[Cell], rows: list[int]) -> None:
    for figure, marker, size, color, label, zorder in _MARKS:
        values = [_on_log_axis(getattr(c, figure)) for c in cells]
        acc.scatter(values, rows, marker=marker, s=size, color=color, label=label, zorder=zorder)
    for row, c in zip(rows, cells, strict=True):
        if c.status != "ok":  # an ERROR (xpsoftmax raised) has no error: mark it at the ceiling
            where = _on_log_axis(c.error) if c.error is not None else _CEILING
            acc.annotate(
                c.status,
                (where, row),
                color="red",
                xytext=(6, -3),
                textcoords="offset points",
                fontsize=8,
            )
    lost = lost_digits(cells)
    if lost:  # say on the figure what the far-right squares are, next to the first of them
        first = lost[0]
        acc.annotate(
            "framework's own log_softmax\nat a dominant logit (see notes)",
            (_on_log_axis(first.their_error), cells.index(first)),
            xytext=(25, 0),
            textcoords="offset points",
            ha="left",
            va="center",
            fontsize=8,
            color="tab:orange",
            arrowprops={"arrowstyle": "->", "color": "tab:orange"},
        )
    acc.set_xscale("log")
    acc.set_xlim(_FLOOR / 3, _CEILING * 3)
    ticks = [_FLOOR, 1.0, 1e2, 1e4, 1e6, 1e8, 1e12, _CEILING]
    acc.set_xticks(ticks, ["0 (exact)", "1", "100", "1e4", "1e6", "1e8", "1e12", "inf"])
    acc.set_xlabel("largest error vs the exact oracle, in eps of the dtype (log scale)")
    acc.grid(axis="x", which="major", alpha=0.4)
    # Legends above the panels, where no cell's mark can be.
    acc.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, fontsize=8, frameon=False)
    acc.set_title("xpsoftmax compare: accuracy (lower is better)", pad=24)


def _speed_panel(speed: Any, cells: list[Cell], rows: list[int], repeats: int | None) -> None:
    from matplotlib.patches import Patch

    per_call = {size_name(c.shape) for c in cells if measures_per_call(c.shape)}
    throughput = {size_name(c.shape) for c in cells if not measures_per_call(c.shape)}
    for row, c in zip(rows, cells, strict=True):
        ratio = c.ratio
        if ratio is None or not math.isfinite(ratio):
            continue
        small = measures_per_call(c.shape)
        color = "tab:green" if ratio <= 1 else "tab:red"
        # Bars start at 1 (equal speed): to the right xpsoftmax is slower, to the left faster.
        speed.barh(
            row,
            ratio - 1,
            left=1,
            height=0.6,
            color=color,
            alpha=0.35 if small else 1.0,
            hatch="///" if small else None,
            edgecolor=color,
        )
        speed.annotate(
            f"{ratio:.2g}x",
            (ratio, row),
            xytext=(3 if ratio > 1 else -3, 0),
            textcoords="offset points",
            ha="left" if ratio > 1 else "right",
            va="center",
            fontsize=7,
        )
    speed.axvline(1.0, color="black", linewidth=1)
    speed.set_xscale("log")
    speed.set_xlabel("time xpsoftmax / time framework's own, per call\n(below 1: xpsoftmax faster)")
    speed.grid(axis="x", which="both", alpha=0.3)
    handles = []
    if per_call:
        handles.append(
            Patch(
                facecolor="lightgray",
                hatch="///",
                edgecolor="gray",
                label=f"per-call cost ({', '.join(sorted(per_call))}): fixed cost, not throughput",
            )
        )
    if throughput:
        handles.append(
            Patch(facecolor="gray", label=f"throughput ({', '.join(sorted(throughput))})")
        )
    speed.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False
    )
    samples = f"best of {repeats}" if repeats else "best sample"
    speed.set_title(
        f"speed ({samples}, interleaved; red: xpsoftmax slower)", pad=14 + 12 * len(handles)
    )
    low, high = speed.get_xlim()
    speed.set_xlim(min(low, 0.5) / 2, max(high, 2.0) * 1.6)  # room for the labels at the bars' ends


def plot(cells: list[Cell], path: str, repeats: int | None = None) -> None:
    """Draw the accuracy and speed of `cells`, and the notes on them, into the PNG file `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [f"{c.variant} {c.dtype} {c.function} {size_name(c.shape)}" for c in cells]
    rows = list(range(len(cells)))
    note_lines = []
    for term, text, _ in notes(cells, repeats=repeats):
        note_lines += textwrap.wrap(f"{term}: {text}", _NOTE_WIDTH, subsequent_indent="    ")
    panels_in = max(3.0, 0.28 * len(cells) + 1.8)
    notes_in = 0.17 * len(note_lines) + 0.2
    fig, (acc, speed) = plt.subplots(
        1,
        2,
        figsize=(14, panels_in + notes_in),
        sharey=True,
        gridspec_kw={"width_ratios": [3, 2]},
    )
    try:
        _accuracy_panel(acc, cells, rows)
        acc.set_yticks(rows, labels, fontsize=8)
        acc.invert_yaxis()
        _speed_panel(speed, cells, rows, repeats)
        notes_share = notes_in / (panels_in + notes_in)
        fig.tight_layout(rect=(0, notes_share, 1, 1))
        fig.text(0.01, notes_share - 0.005, "\n".join(note_lines), va="top", fontsize=8.5)
        fig.savefig(path, dpi=110, format="png")
    finally:
        plt.close(fig)
