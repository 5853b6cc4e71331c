"""``xpsoftmax compare``: validate and time xpsoftmax on every installed framework.

For each backend x device x dtype x function x size, the command measures the error of xpsoftmax against
the exact (mpmath) oracle, its difference from the framework's own implementation, and its time relative
to it (see `xpsoftmax.backends.cli._compare_cells`), prints a table, and exits with status 1, naming the
cells, if any error lies beyond the accuracy bounds (spec: Accuracy;
`xpsoftmax.testing.bounds`): a
cross-framework check a CI pipeline can run. A backend that is not installed is reported and skipped.
Its options are parsed in `xpsoftmax.backends.cli.parser`, which calls `run`.

Examples
--------
.. code-block:: console

    $ xpsoftmax compare --quick
    $ xpsoftmax compare --backends torch,jax --dtypes float32 --json out.json --plot out.png
    $ python -m xpsoftmax compare --full
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

from .. import BACKENDS, FLOAT_DTYPES, Variant, all_variant_ids, all_variants, variant
from ._choices import COMPARED_FUNCTIONS
from ._compare_cells import Cell, measure
from ._compare_report import failures, format_table, report, write_json
from .parser import check_output_folders

__all__ = [
    "MODES",
    "Cell",
    "PlannedCell",
    "failures",
    "format_table",
    "measure",
    "plan",
    "report",
    "select_variants",
    "write_json",
]

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
        "functions": COMPARED_FUNCTIONS,
        "dtypes": FLOAT_DTYPES,
        "sizes": ((16, 64), (256, 1024)),
        "repeats": 10,
        "sample_s": 0.01,
    },
}
#: Jacobians hold n * n entries per slice: their slices are cut to this length, and their batch
#: to stay near `JACOBIAN_ENTRIES` entries in all.
JACOBIAN_MAX_N = 256
JACOBIAN_ENTRIES = 2**22


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
    return bool(on_default) and not (v.compiled and v.backend.name == "torch")


def _canonical(names: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """The --backends list with every variant under its id ("jax-jit" becomes "jax.jit")."""
    canonical = []
    for name in names:
        if name in BACKENDS:
            canonical.append(name)
            continue
        try:
            canonical.append(variant(name).id)
        except KeyError:
            known = ", ".join(dict.fromkeys([*BACKENDS, *all_variant_ids()]))
            parser.error(f"--backends: unknown backend or variant {name!r}; known: {known}")
    return canonical


def select_variants(
    names: Sequence[str] | None, mode: str, parser: argparse.ArgumentParser
) -> tuple[list[Variant], list[tuple[str, str]]]:
    """(variants to run, (variant or backend, reason) for those selected that cannot run here).

    Without --backends, every backend of the registry that is not installed is reported as well.
    """
    names = _canonical(names, parser) if names else None
    runnable, missing = [], []
    for v in all_variants():
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
    for key, allowed in (("functions", COMPARED_FUNCTIONS), ("dtypes", FLOAT_DTYPES)):
        bad = [item for item in settings[key] if item not in allowed]
        if bad or not settings[key]:
            parser.error(
                f"unknown {key[:-1]} {bad[0] if bad else ''!r}; choose among {', '.join(allowed)}"
            )
    if settings["repeats"] < 1:
        parser.error(f"--repeats must be at least 1, got {settings['repeats']}")
    check_output_folders(parser, args)  # not after minutes of measuring
    return settings


class PlannedCell(NamedTuple):
    """One cell to measure: `function` on `variant` in `dtype` at `shape` (batch, n)."""

    variant: Variant
    dtype: str
    function: str
    shape: tuple[int, int]


def plan(variants: list[Variant], settings: dict[str, Any]) -> list[PlannedCell]:
    """Every cell to measure, in table order."""
    cells: list[PlannedCell] = []
    for v in variants:
        for dtype in (d for d in settings["dtypes"] if d in v.dtypes()):
            for function in settings["functions"]:
                for rows, n in settings["sizes"]:
                    shape = (rows, n)
                    if function.endswith("jacobian"):
                        n = min(n, JACOBIAN_MAX_N)
                        shape = (max(1, min(rows, JACOBIAN_ENTRIES // (n * n))), n)
                    if shape not in [c.shape for c in cells if c[:3] == (v, dtype, function)]:
                        cells.append(PlannedCell(v, dtype, function, shape))
    return cells


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Measure, report and write the requested files; the exit status."""
    parser = args.command_parser
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
        for cell in todo:
            progress.set_postfix_str(
                f"{cell.variant.id} {cell.dtype} {cell.function}", refresh=False
            )
            cells.append(
                measure(
                    cell.variant,
                    cell.dtype,
                    cell.function,
                    cell.shape,
                    repeats=settings["repeats"],
                    sample_s=settings["sample_s"],
                )
            )
            progress.update()
    status = report(cells, missing, wide=args.wide, repeats=settings["repeats"])
    if args.json:
        write_json(args.json, cells, missing, settings, argv)
        print(f"wrote {args.json}")
    if args.plot:
        from ._compare_plot import plot

        plot(cells, args.plot, repeats=settings["repeats"])
        print(f"wrote {args.plot}")
    return status
