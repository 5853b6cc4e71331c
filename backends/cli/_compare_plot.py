"""The ``--plot`` figure of ``xpsoftmax compare``: accuracy beside speed, one row per cell.

Left: the error against the exact oracle of xpsoftmax and of the framework's own function, in eps of the
dtype, with the bound of each cell (spec: Accuracy), on a log scale. Right: the time of xpsoftmax
over the time of the framework's own, where 1 means equally fast (log scale). matplotlib is imported
here only, with the Agg backend: the command draws into a file and never needs a display.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._compare_cells import Cell

# Errors of 0 (exact) cannot sit on a log axis: they are drawn at this floor, labelled "exact".
_FLOOR = 1e-2
# Infinite errors (a NaN or an overflow where the exact value is finite) are drawn here.
_CEILING = 1e17


def _on_log_axis(value: float | None) -> float:
    if value is None:
        return math.nan
    return min(max(value, _FLOOR), _CEILING)


def plot(cells: list[Cell], path: str) -> None:
    """Draw the accuracy and speed of `cells` into the PNG file `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [f"{c.variant} {c.dtype} {c.function} {c.shape[0]}x{c.shape[1]}" for c in cells]
    rows = list(range(len(cells)))
    height = max(3.0, 0.28 * len(cells) + 1.5)
    fig, (acc, speed) = plt.subplots(
        1, 2, figsize=(13, height), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    try:
        acc.scatter(
            [_on_log_axis(c.their_error) for c in cells],
            rows,
            marker="s",
            s=22,
            color="tab:orange",
            label="framework's own",
            zorder=3,
        )
        acc.scatter(
            [_on_log_axis(c.error) for c in cells],
            rows,
            marker="o",
            s=22,
            color="tab:blue",
            label="xpsoftmax",
            zorder=4,
        )
        acc.scatter(
            [_on_log_axis(c.bound) for c in cells],
            rows,
            marker="|",
            s=120,
            color="black",
            label="bound (docs: Specification, Accuracy)",
            zorder=2,
        )
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
        acc.set_xscale("log")
        acc.set_xlabel(
            f"max error vs exact oracle, in eps of the dtype\n({_FLOOR:g}: exact, {_CEILING:g}: infinite)"
        )
        acc.set_yticks(rows, labels, fontsize=8)
        acc.invert_yaxis()
        acc.grid(axis="x", which="major", alpha=0.4)
        acc.legend(loc="lower right", fontsize=8)
        acc.set_title("accuracy (lower is better)")

        ratios = [c.ratio if c.ratio is not None else math.nan for c in cells]
        colors = ["tab:green" if r <= 1 else "tab:red" for r in ratios]
        # Bars start at 1 (equal speed): to the right xpsoftmax is slower, to the left faster.
        widths = [r - 1 if math.isfinite(r) else 0 for r in ratios]
        speed.barh(rows, widths, color=colors, left=1, height=0.6)
        speed.axvline(1.0, color="black", linewidth=1)
        speed.set_xscale("log")
        speed.set_xlabel("time xpsoftmax / time framework's own\n(below 1: xpsoftmax faster)")
        speed.grid(axis="x", which="both", alpha=0.3)
        speed.set_title("speed (best of N, interleaved)")
        fig.suptitle("xpsoftmax compare")
        fig.tight_layout()
        fig.savefig(path, dpi=110, format="png")
    finally:
        plt.close(fig)
