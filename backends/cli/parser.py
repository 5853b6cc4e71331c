"""The ``xpsoftmax`` command line's one parser: every subcommand's options, and the dispatch.

Each subcommand's work lives in its own module (`compare`, `calibrate`), which receives the parsed
arguments; usage errors stay here, or go through ``args.command_parser`` so that they show the
subcommand's usage. This module imports only what a base install has (no ``cli`` extra), and a
subcommand's module is imported when that subcommand runs: ``--help``, ``--version`` and
``calibrate`` work without the extra, and ``compare``, which needs the mpmath oracle, fails with
the message of ``python -m xpsoftmax`` naming the extra.

Examples
--------
.. code-block:: console

    $ xpsoftmax compare --quick
    $ xpsoftmax calibrate logits.npy labels.npy --plot report.png
    $ python -m xpsoftmax --help
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

import xpsoftmax

from .._base import FLOAT_DTYPES
from ._choices import COMPARED_FUNCTIONS

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line after the usage (never a traceback)."""

    def error(self, message: str) -> NoReturn:
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


def _add_compare(commands: argparse._SubParsersAction[_Parser]) -> None:
    compare_parser = commands.add_parser(
        "compare",
        help="validate and time xpsoftmax on every installed framework",
        description="Check xpsoftmax against an exact oracle and against each framework's own "
        "functions, and time it. Exits 1, naming the cells, if an error exceeds "
        "the accuracy bounds (docs: Specification, Accuracy).",
    )
    mode = compare_parser.add_mutually_exclusive_group()
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
    compare_parser.add_argument(
        "--backends",
        type=_csv,
        metavar="LIST",
        help="backend names or variant ids, e.g. numpy,torch,jax-jit",
    )
    compare_parser.add_argument(
        "--functions", type=_csv, metavar="LIST", help=f"among {','.join(COMPARED_FUNCTIONS)}"
    )
    compare_parser.add_argument(
        "--dtypes", type=_csv, metavar="LIST", help=f"among {','.join(FLOAT_DTYPES)}"
    )
    compare_parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="LIST",
        help="BATCHxN shapes, softmax along N, e.g. 16x64,256x1024",
    )
    compare_parser.add_argument(
        "--repeats", type=int, metavar="N", help="timing samples (best of N)"
    )
    compare_parser.add_argument(
        "--json", metavar="PATH", help="write every figure to this JSON file"
    )
    compare_parser.add_argument("--plot", metavar="PATH", help="draw the figures into this PNG")
    compare_parser.add_argument(
        "--wide",
        action="store_true",
        help="every column (device, bound, the framework's own error); the default fits 100",
    )
    compare_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    # The subcommand's own parser, so that its usage errors show its usage, not the top level's.
    compare_parser.set_defaults(mode="quick", command_parser=compare_parser)


def _add_calibrate(commands: argparse._SubParsersAction[_Parser]) -> None:
    calibrate_parser = commands.add_parser(
        "calibrate",
        help="fit a temperature to a model's logits and measure its calibration",
        description="Fit the temperature T minimising the mean cross-entropy of LOGITS "
        "(samples x classes) against LABELS (one integer class per sample), and print T, the "
        "NLL and the expected calibration error before and after, and the accuracy. "
        "Files: .npy, .npz (the array named 'logits' or 'labels', or its only one) or .csv.",
    )
    calibrate_parser.add_argument("logits", metavar="LOGITS", help="logits, one row per sample")
    calibrate_parser.add_argument(
        "labels", metavar="LABELS", help="integer class labels, one per sample"
    )
    calibrate_parser.add_argument(
        "--n-bins", type=int, default=15, metavar="N", help="calibration bins (default 15)"
    )
    calibrate_parser.add_argument(
        "--json", metavar="PATH", help="write the figures to this JSON file"
    )
    calibrate_parser.add_argument(
        "--plot", metavar="PATH", help="draw reliability diagrams into this PNG"
    )
    calibrate_parser.add_argument(
        "--drop-nonfinite",
        action="store_true",
        help="drop the samples whose logits or label are NaN or infinite, and count the rest "
        "(without it such samples are an error, exit status 2)",
    )
    calibrate_parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    calibrate_parser.set_defaults(command_parser=calibrate_parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``xpsoftmax`` parser, with its ``compare`` and ``calibrate`` subcommands."""
    parser = _Parser(prog="xpsoftmax", description="xpsoftmax command line")
    parser.add_argument("--version", action="version", version=f"xpsoftmax {xpsoftmax.__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", parser_class=_Parser
    )
    _add_compare(commands)
    _add_calibrate(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``xpsoftmax`` with `argv` (default: ``sys.argv[1:]``); the exit status.

    Usage errors print the usage and a one-line message and return 2, as argparse does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "calibrate":
            from . import calibrate

            return calibrate.run(args)
        from . import compare  # needs the cli extra (the mpmath oracle)

        return compare.run(args, argv)
    except SystemExit as exit_:  # argparse's --help (0) and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except OSError as err:  # an unwritable --json or --plot path: one line, not a traceback
        print(f"xpsoftmax: error: {err}", file=sys.stderr)
        return 2
