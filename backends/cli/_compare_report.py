"""The outputs of ``xpsoftmax compare``: the table, the failure summary and the JSON file."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import math
import platform
import sys
from typing import Any

from ._compare_cells import Cell

#: Where the bounds each cell is held to are stated, as the command's output cites them.
BOUNDS = "the accuracy bounds (docs: Specification, Accuracy)"


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def format_table(cells: list[Cell]) -> str:
    """The comparison table: one row per cell, errors in eps of the dtype, time ours / theirs.

    "own" is the framework's own function (SciPy for NumPy, Dask and array-api-strict, autodiff for
    the Jacobian family); its error against the oracle shows where a difference comes from.
    """
    header = (
        "backend",
        "device",
        "dtype",
        "function",
        "size",
        "err vs oracle (eps)",
        "bound (eps)",
        "own err vs oracle",
        "diff vs own (eps)",
        "time ours/own",
        "status",
    )
    rows = [
        (
            c.variant,
            c.device,
            c.dtype,
            c.function,
            f"{c.shape[0]}x{c.shape[1]}",
            _fmt(c.error),
            _fmt(c.bound),
            _fmt(c.their_error),
            _fmt(c.difference),
            _fmt(c.ratio, 2),
            c.status,
        )
        for c in cells
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


#: Below this many entries a call's time is mostly its fixed cost (argument checks, dispatch).
PER_CALL_ENTRIES = 65536


def _time_note(cells: list[Cell]) -> str:
    """What "time ours/own" measures at the sizes in the table: a 16x64 figure of 16 against
    torch is per-call cost (a few tensor dispatches against one fused call), not throughput."""
    small = sorted({c.shape for c in cells if c.shape[0] * c.shape[1] < PER_CALL_ENTRIES})
    large = sorted({c.shape for c in cells if c.shape[0] * c.shape[1] >= PER_CALL_ENTRIES})

    def names(shapes: list[tuple[int, int]]) -> str:
        return ", ".join("x".join(map(str, s)) for s in shapes)

    note = "time ours/own: best seconds per call of xpsoftmax over the framework's own function"
    if small:
        note += (
            f"; at {names(small)} it measures per-call cost (argument checks, one dispatch per"
            " array operation against one fused call), not throughput"
        )
    if large:
        note += f"; at {names(large)} it measures throughput"
    elif small:
        note += " (--full adds 256x1024)"
    return note + "."


def failures(cells: list[Cell]) -> list[Cell]:
    """The cells beyond their bound (spec: Accuracy; "FAIL") or where xpsoftmax raised ("ERROR")."""
    return [c for c in cells if c.status != "ok"]


def report(cells: list[Cell], missing: list[tuple[str, str]], out: Any = None) -> int:
    """Print the table, what was skipped and the failures; the exit status (1 on any failure)."""
    out = out or sys.stdout
    print(
        format_table(cells) if cells else "nothing to compare: no selected backend is installed",
        file=out,
    )
    if cells:
        print(_time_note(cells), file=out)
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
