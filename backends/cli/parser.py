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
import os
import re
import sys
from typing import NoReturn

import xpsoftmax

from .._base import FLOAT_DTYPES
from ._choices import COMPARED_FUNCTIONS

__all__ = ["build_parser", "check_output_folders", "main"]


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line after the usage (never a traceback)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def check_output_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error for a ``--json`` or ``--plot`` path whose folder does not exist: found
    now, not after the work."""
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(folder):
            parser.error(f"{option}: folder {folder!r} does not exist")


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _size(item: str) -> tuple[int, int]:
    """One ``BATCHxN`` shape, or an error naming what is wrong with it."""
    rows, sep, n = item.lower().partition("x")
    if not sep:
        raise argparse.ArgumentTypeError(f"size {item!r} has no 'x': write BATCHxN, e.g. 16x64")
    counts = []
    for part, name in ((rows, "BATCH"), (n, "N")):
        try:
            count = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"size {item!r}: {name} {part!r} is not a whole number"
            ) from None
        if count < 1:
            raise argparse.ArgumentTypeError(
                f"size {item!r}: {name} must be at least 1, got {count}"
            )
        counts.append(count)
    return counts[0], counts[1]


def _sizes(text: str) -> list[tuple[int, int]]:
    sizes = [_size(item) for item in _csv(text)]
    if not sizes:
        raise argparse.ArgumentTypeError("no size given")
    return sizes


def _add_outputs(parser: argparse.ArgumentParser, *, json: str, plot: str) -> None:
    """The options every subcommand shares: what ``--json`` writes, what ``--plot`` draws, and
    ``--no-progress`` (see `check_output_folders`)."""
    parser.add_argument("--json", metavar="PATH", help=f"write {json} to this JSON file")
    parser.add_argument("--plot", metavar="PATH", help=f"draw {plot} into this PNG file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_compare(compare_parser: argparse.ArgumentParser) -> None:
    mode = compare_parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="a few seconds per backend: CPU, eager and jax.jit, 16x64 (the default)",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every function, dtype and device, torch.compile included, 16x64 and 256x1024; "
        "minutes per backend",
    )
    compare_parser.add_argument(
        "--backends",
        type=_csv,
        metavar="LIST",
        help="backend or variant names, comma-separated, e.g. numpy,torch,jax.jit "
        "(the older spellings jax-jit, torch-compile, torch-cuda work too)",
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
        help="shapes, comma-separated: BATCH rows of N entries each, softmax along N "
        "(counts of entries, e.g. 16x64,256x1024)",
    )
    compare_parser.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="timing samples per cell, each about 2 ms (--quick) or 10 ms (--full) of calls; "
        "the best of N is kept (default 5, --full 10)",
    )
    _add_outputs(
        compare_parser,
        json="every figure (errors in eps of the dtype, times in seconds)",
        plot="the errors and time ratios",
    )
    compare_parser.add_argument(
        "--wide",
        action="store_true",
        help="add the device, the difference from the framework's own result (eps) and both "
        "times (microseconds): about 150 characters per line, where the default table takes "
        "about 100",
    )
    compare_parser.set_defaults(mode="quick")


def _add_calibrate(calibrate_parser: argparse.ArgumentParser) -> None:
    calibrate_parser.add_argument("logits", metavar="LOGITS", help="logits, one row per sample")
    calibrate_parser.add_argument(
        "labels", metavar="LABELS", help="integer class labels, one per sample"
    )
    calibrate_parser.add_argument(
        "--n-bins",
        type=int,
        default=15,
        metavar="N",
        help="equal-width bins of confidence over [0, 1] for the ECE and the diagrams (default 15)",
    )
    measured_on = calibrate_parser.add_mutually_exclusive_group()
    measured_on.add_argument(
        "--test",
        nargs=2,
        metavar=("TEST_LOGITS", "TEST_LABELS"),
        help="measure on these two files (the same formats); T is fitted on LOGITS and LABELS",
    )
    measured_on.add_argument(
        "--test-fraction",
        type=float,
        metavar="F",
        help="hold out this fraction of the samples (0 < F < 1), drawn at random, to measure "
        "on; T is fitted on the rest",
    )
    calibrate_parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of the random draw of --test-fraction (default 0)",
    )
    _add_outputs(
        calibrate_parser, json="the figures, both sets and the curves", plot="reliability diagrams"
    )
    calibrate_parser.add_argument(
        "--drop-nonfinite",
        action="store_true",
        help="drop the samples whose logits or label are NaN or infinite, and count the rest "
        "(without it such samples are an error, exit status 2)",
    )


#: Each subcommand: (its line in the top-level help, its description, what adds its options).
_SUBCOMMANDS = {
    "compare": (
        "validate and time xpsoftmax on every installed framework",
        (
            "Check xpsoftmax against an exact oracle and against each framework's own functions, "
            "and time it. Exits 1, naming the cells, if an error exceeds the accuracy bounds "
            "(docs: Specification, Accuracy)."
        ),
        _add_compare,
    ),
    "calibrate": (
        "fit a temperature to a model's logits and measure its calibration",
        (
            "Fit the temperature T minimising the mean cross-entropy of LOGITS (samples x "
            "classes) against LABELS (one integer class per sample), and print T, the NLL and the"
            " expected calibration error before and after, and the accuracy, measured on --test "
            "files or on a --test-fraction held out from the fit (without either, on the samples "
            "T was fitted to). Files: .npy, .npz (the array named 'logits' or 'labels', or its "
            "only one) or .csv."
        ),
        _add_calibrate,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``xpsoftmax`` parser, with its ``compare`` and ``calibrate`` subcommands."""
    parser = _Parser(prog="xpsoftmax", description="xpsoftmax command line")
    parser.add_argument("--version", action="version", version=f"xpsoftmax {xpsoftmax.__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", parser_class=_Parser
    )
    for name, (summary, description, add_options) in _SUBCOMMANDS.items():
        command = commands.add_parser(name, help=summary, description=description)
        # The subcommand's own parser, so that its usage errors show its usage, not the top's.
        command.set_defaults(command_parser=command)
        add_options(command)
    return parser


def _value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The options of `parser` and its subcommands that take exactly one value."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found |= _value_options(command)
        elif action.option_strings and action.nargs is None:
            found.update(action.option_strings)
    return found


def _glue_dashed_values(argv: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--sizes -3x4`` as ``--sizes=-3x4``: argparse takes a value starting with a dash and a
    digit for an option of its own (unless it is a plain negative number) and would say only
    "expected one argument"; glued, the value reaches its check, which says what is wrong."""
    value_options = _value_options(parser)
    glued: list[str] = []
    for arg in argv:
        if glued and glued[-1] in value_options and re.match(r"-\.?\d", arg):
            glued[-1] += f"={arg}"
        else:
            glued.append(arg)
    return glued


def main(argv: list[str] | None = None) -> int:
    """Run ``xpsoftmax`` with `argv` (default: ``sys.argv[1:]``); the exit status.

    Usage errors print the usage and a one-line message and return 2, as argparse does.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(_glue_dashed_values(argv, parser))
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
