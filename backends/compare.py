"""``xpsoftmax compare``: validate and time xpsoftmax on every installed framework.

For each backend x device x dtype x function x size, the command measures the error of xpsoftmax against
the exact (mpmath) oracle, its difference from the framework's own implementation, and its time relative
to it (see `xpsoftmax.backends._compare_cells`), prints a table, and exits with status 1, naming the
cells, if any error lies beyond the SPEC.md bounds (`xpsoftmax.backends.bounds`): a
cross-framework check a CI pipeline can run. A backend that is not installed is reported and skipped.

Examples
--------
.. code-block:: console

    $ xpsoftmax compare --quick
    $ xpsoftmax compare --backends torch,jax --dtypes float32 --json out.json --plot out.png
    $ python -m xpsoftmax compare --full
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from . import BACKENDS, all_variants
from ._base import FLOAT_DTYPES
from ._compare_cells import FUNCTIONS, Cell, measure
from ._variant import Variant

#: Settings of the two modes; command-line options override them one by one.
MODES: dict[str, dict[str, Any]] = {
    # A few seconds per backend: eager CPU variants (and jax.jit, which compiles in milliseconds).
    "quick": {
        "functions": ("softmax", "log_softmax", "logsumexp", "cross_entropy"),
        "dtypes": ("float32", "float64"),
        "sizes": ((16, 64),),
        "repeats": 5,
        "sample_s": 0.002,
    },
    # Everything, on every device, compiled variants (torch.compile) included.
    "full": {
        "functions": FUNCTIONS,
        "dtypes": FLOAT_DTYPES,
        "sizes": ((16, 64), (256, 1024)),
        "repeats": 15,
        "sample_s": 0.02,
    },
}
#: Jacobians hold n * n entries per slice: their batch is cut to stay near this many entries.
JACOBIAN_ENTRIES = 2**22


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line after the usage (never a traceback)."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in _csv(text):
        rows, sep, n = item.lower().partition("x")
        if not (sep and rows.isdigit() and n.isdigit() and int(rows) > 0 and int(n) > 0):
            raise argparse.ArgumentTypeError(f"size {item!r} is not BATCHxN, e.g. 16x64")
        sizes.append((int(rows), int(n)))
    if not sizes:
        raise argparse.ArgumentTypeError("no size given")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    """The ``xpsoftmax`` parser, with its ``compare`` subcommand."""
    parser = _Parser(prog="xpsoftmax", description="xpsoftmax command line")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", parser_class=_Parser
    )
    compare = commands.add_parser(
        "compare",
        help="validate and time xpsoftmax on every installed framework",
        description="Check xpsoftmax against an exact oracle and against each framework's own "
        "functions, and time it. Exits 1, naming the cells, if an error exceeds the SPEC.md bounds.",
    )
    mode = compare.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="a few seconds per backend: CPU, eager and jax.jit (the default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every function, dtype and device, torch.compile included",
    )
    compare.add_argument(
        "--backends",
        type=_csv,
        metavar="LIST",
        help="backend names or variant ids, e.g. numpy,torch,jax-jit",
    )
    compare.add_argument(
        "--functions", type=_csv, metavar="LIST", help=f"among {','.join(FUNCTIONS)}"
    )
    compare.add_argument(
        "--dtypes", type=_csv, metavar="LIST", help=f"among {','.join(FLOAT_DTYPES)}"
    )
    compare.add_argument(
        "--sizes",
        type=_sizes,
        metavar="LIST",
        help="BATCHxN shapes, softmax along N, e.g. 16x64,256x1024",
    )
    compare.add_argument("--repeats", type=int, metavar="N", help="timing samples (best of N)")
    compare.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    compare.add_argument("--plot", metavar="PATH", help="draw the figures into this PNG")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar")
    compare.set_defaults(mode="quick")
    return parser


def _wanted(v: Variant, names: Sequence[str] | None, mode: str) -> bool:
    """Whether the mode and the --backends list select variant `v` (installed or not)."""
    if names and v.id in names:  # a variant named by its id always runs, whatever the mode
        return True
    if names and v.backend.name not in names:
        return False
    if mode == "full":
        return True
    # --quick: the default device only (CPU, or the GPU of a GPU-only library that was named), and
    # no torch.compile, which takes seconds per function.
    on_default = v.device == v.backend.default_device and (names or v.device == "cpu")
    return bool(on_default) and v.id != "torch-compile"


def select_variants(
    names: Sequence[str] | None, mode: str, parser: argparse.ArgumentParser
) -> tuple[list[Variant], list[tuple[str, str]]]:
    """(variants to run, (variant or backend, reason) for those selected that cannot run here).

    Without --backends, every backend of the registry that is not installed is reported as well.
    """
    everything = all_variants()
    known = {v.backend.name for v in everything} | {v.id for v in everything}
    unknown = [name for name in names or () if name not in known]
    if unknown:
        parser.error(f"unknown backend {unknown[0]!r}; known: {', '.join(sorted(known))}")
    runnable, missing = [], []
    for v in everything:
        if _wanted(v, names, mode):
            reason = v.unavailable_reason()
            if reason is None:
                runnable.append(v)
            else:
                missing.append((v.id, reason))
    if not names:
        reported = {variant_id for variant_id, _ in missing}
        missing += [
            (b.name, f"{b.module} is not installed")
            for b in BACKENDS.values()
            if not b.is_installed() and b.name not in reported
        ]
    return runnable, missing


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    settings = dict(MODES[args.mode])
    for key in ("functions", "dtypes", "sizes", "repeats"):
        if getattr(args, key) is not None:
            settings[key] = tuple(getattr(args, key)) if key != "repeats" else args.repeats
    for key, allowed in (("functions", FUNCTIONS), ("dtypes", FLOAT_DTYPES)):
        bad = [item for item in settings[key] if item not in allowed]
        if bad or not settings[key]:
            parser.error(
                f"unknown {key[:-1]} {bad[0] if bad else ''!r}; choose among {', '.join(allowed)}"
            )
    if settings["repeats"] < 1:
        parser.error("--repeats must be at least 1")
    # Refuse an unwritable output path now, not after minutes of measuring.
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(folder):
            parser.error(f"{option}: folder {folder!r} does not exist")
    return settings


def plan(variants: list[Variant], settings: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Every (variant, dtype, function, shape) to measure, in table order."""
    cells = []
    for v in variants:
        for dtype in (d for d in settings["dtypes"] if d in v.dtypes()):
            for function in settings["functions"]:
                for rows, n in settings["sizes"]:
                    if function.endswith("jacobian"):
                        rows = max(1, min(rows, JACOBIAN_ENTRIES // (n * n)))
                    cells.append((v, dtype, function, (rows, n)))
    return cells


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


def failures(cells: list[Cell]) -> list[Cell]:
    """The cells beyond their SPEC.md bound ("FAIL") or where xpsoftmax raised ("ERROR")."""
    return [c for c in cells if c.status != "ok"]


def report(cells: list[Cell], missing: list[tuple[str, str]], out: Any = None) -> int:
    """Print the table, what was skipped and the failures; the exit status (1 on any failure)."""
    out = out or sys.stdout
    print(
        format_table(cells) if cells else "nothing to compare: no selected backend is installed",
        file=out,
    )
    for variant_id, reason in missing:
        print(f"skipped {variant_id}: {reason}", file=out)
    for c in cells:
        if c.note:
            print(f"note {c.label}: {c.note}", file=out)
    failed = failures(cells)
    if failed:
        print(
            f"FAILED: {len(failed)} cell(s) beyond the SPEC.md bounds or raising: "
            + ", ".join(c.label for c in failed),
            file=out,
        )
        return 1
    if cells:
        print(f"all {len(cells)} cells within the SPEC.md bounds", file=out)
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


def run(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Measure, report and write the requested files; the exit status."""
    settings = _settings(args, parser)
    variants, missing = select_variants(args.backends, args.mode, parser)
    todo = plan(variants, settings)
    cells = []
    from tqdm import tqdm

    # Frameworks' own deprecation notices (torch.compile's inductor has several) would bury the table.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    with tqdm(
        total=len(todo),
        unit="cell",
        file=sys.stderr,
        disable=args.no_progress,
        desc="xpsoftmax compare",
        dynamic_ncols=True,
    ) as progress:
        for variant, dtype, function, shape in todo:
            progress.set_postfix_str(f"{variant.id} {dtype} {function}", refresh=False)
            cells.append(
                measure(
                    variant,
                    dtype,
                    function,
                    shape,
                    repeats=settings["repeats"],
                    sample_s=settings["sample_s"],
                )
            )
            progress.update()
    status = report(cells, missing)
    if args.json:
        write_json(args.json, cells, missing, settings, argv)
        print(f"wrote {args.json}")
    if args.plot:
        from ._compare_plot import plot

        plot(cells, args.plot)
        print(f"wrote {args.plot}")
    return status


def main(argv: list[str] | None = None) -> int:
    """Run ``xpsoftmax`` with `argv` (default: ``sys.argv[1:]``); the exit status.

    Usage errors print the usage and a one-line message and return 2, as argparse does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return run(args, parser, argv)
    except SystemExit as exit_:  # argparse's --help (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except OSError as err:  # an unwritable --json or --plot path: one line, not a traceback
        print(f"xpsoftmax: error: {err}", file=sys.stderr)
        return 2
