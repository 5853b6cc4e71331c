"""The outputs of ``xpsoftmax compare``: the table, the failure summary and the JSON file."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import platform
import sys
from collections.abc import Callable
from typing import Any

from ._compare_cells import Cell
from ._compare_notes import cell_marks, footnote_marks, notes, size_name, wrap_notes

#: Where the bounds each cell is held to are stated, as the command's output cites them.
BOUNDS = "the accuracy bounds (docs: Specification, Accuracy)"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}x"


def _microseconds(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e6:.3g}"


#: The columns of the table: (header, units line, value of a cell after its mark, shown without
#: --wide). The marks point to the notes under the table (`footnote_marks`).
_COLUMNS: tuple[tuple[str, str, Callable[[Cell, dict[str, str]], str], bool], ...] = (
    ("backend", "", lambda c, _: c.variant, True),
    ("device", "", lambda c, _: c.device, False),
    ("dtype", "", lambda c, _: c.dtype, True),
    ("function", "", lambda c, _: c.function, True),
    ("size", "", lambda c, _: size_name(c.shape), True),
    ("error", "(eps)", lambda c, _: _fmt(c.error), True),
    ("bound", "(eps)", lambda c, _: _fmt(c.bound), True),
    ("own error", "(eps)", lambda c, m: _fmt(c.their_error) + m["own error"], True),
    ("diff vs own", "(eps)", lambda c, _: _fmt(c.difference), False),
    ("ours", "(us)", lambda c, _: _microseconds(c.time_ours_s), False),
    ("own", "(us)", lambda c, _: _microseconds(c.time_theirs_s), False),
    ("time", "ours/own", lambda c, m: _ratio(c.ratio) + m["time"], True),
    ("status", "", lambda c, _: c.status, True),
)


def format_table(cells: list[Cell], wide: bool = False) -> str:
    """The comparison table: one row per cell, a header of two lines (the name, then the unit).

    Without `wide` it shows the error of xpsoftmax against the oracle and its bound, the error
    of the framework's own function, in eps of the dtype, and the time ratio; a figure that a
    note explains carries that note's mark. `wide` adds the device, the difference between the
    two results and both times in microseconds. "own" is the framework's own function (SciPy
    for NumPy, Dask and array-api-strict, autodiff for the Jacobian family); its error against
    the oracle shows where a difference comes from.
    """
    columns = [column for column in _COLUMNS if wide or column[3]]
    marks = footnote_marks(cells)
    table = [[name for name, *_ in columns], [unit for _, unit, *_ in columns]]
    for c in cells:
        marked = cell_marks(c, marks)
        table.append([value(c, marked) for _, _, value, _ in columns])
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def failures(cells: list[Cell]) -> list[Cell]:
    """The cells beyond their bound (spec: Accuracy; "FAIL") or where xpsoftmax raised ("ERROR")."""
    return [c for c in cells if c.status != "ok"]


def report(
    cells: list[Cell],
    missing: list[tuple[str, str]],
    out: Any = None,
    *,
    wide: bool = False,
    repeats: int | None = None,
) -> int:
    """Print the table, its notes, what was skipped and the failures; the exit status (1 on any
    failure). `wide` prints every column; `repeats` is the number of timing samples."""
    out = out or sys.stdout
    print(
        format_table(cells, wide)
        if cells
        else "nothing to compare: no selected backend is installed",
        file=out,
    )
    if cells:
        marks = footnote_marks(cells)
        print("\n".join(wrap_notes(notes(cells, wide, repeats, marks))), file=out)
    for variant_id, reason in missing:
        print(f"skipped {variant_id}: {reason}", file=out)
    for c in cells:
        if c.note:
            print(f"note {c.label}: {c.note}", file=out)
    failed = failures(cells)
    if failed:
        print(
            f"FAILED: {len(failed)} cell(s) beyond {BOUNDS} or raising: "
            + ", ".join(c.label for c in failed),
            file=out,
        )
        return 1
    if cells:
        print(f"all {len(cells)} cells within {BOUNDS}", file=out)
    return 0


def _jsonable(value: Any) -> Any:
    """Infinite and NaN errors become the strings "inf" and "nan": strict JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _versions() -> dict[str, str]:
    versions = {}
    for dist in (
        "xpsoftmax",
        "numpy",
        "scipy",
        "mpmath",
        "array-api-compat",
        "array-api-strict",
        "jax",
        "jaxlib",
        "torch",
        "dask",
        "cupy",
    ):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


def write_json(
    path: str,
    cells: list[Cell],
    missing: list[tuple[str, str]],
    settings: dict[str, Any],
    argv: list[str],
) -> None:
    """Every figure of the run, with the machine, versions and settings, as strict JSON."""
    document = {
        "command": ["xpsoftmax", *argv],
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "versions": _versions(),
        "settings": {k: v if k != "sizes" else [list(s) for s in v] for k, v in settings.items()},
        "units": {
            "error": "eps of the dtype",
            "time": "seconds per call, best sample",
            "ratio": "time ours / time theirs",
        },
        "skipped": [{"variant": i, "reason": r} for i, r in missing],
        "cells": [c.as_json() for c in cells],
        "failures": [c.label for c in failures(cells)],
    }
    with open(path, "w", encoding="utf-8") as file:
        json.dump(_jsonable(document), file, indent=1, allow_nan=False)
        file.write("\n")
