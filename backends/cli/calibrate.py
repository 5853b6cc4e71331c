"""``xpsoftmax calibrate``: fit a temperature to a model's logits and report its calibration.

Reads the logits (samples x classes) and the integer labels of a held-out set from .npy, .npz or
.csv files, fits the temperature T with `xpsoftmax.fit_temperature`, and prints T, the negative
log-likelihood and the expected calibration error before and after scaling, and the accuracy,
which temperature scaling never changes. The figures are measured on a second pair of files
(``--test``), on a fraction of the samples held out at random from the fit (``--test-fraction``
with ``--seed``), or, given neither, on the samples T was fitted to, which the report says.
``--json`` writes the figures and the reliability curves; ``--plot`` draws the reliability
diagrams before and after, each over a confidence histogram. A file that cannot be read gives
one line on stderr and exit status 2.

Examples
--------
.. code-block:: console

    $ xpsoftmax calibrate logits.npy labels.npy --test-fraction 0.5 --seed 1
    $ xpsoftmax calibrate val.npz val.npz --test test.npz test.npz --json report.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._calibrate_report import SampleSet, figures, figures_at, format_report, plot
from .parser import check_output_folders

__all__ = [
    "SampleSet",
    "checked",
    "figures",
    "figures_at",
    "format_report",
    "hold_out",
    "load",
    "plot",
    "run",
]

#: Inputs with at least this many logits show a progress bar on stderr.
PROGRESS_ENTRIES = 2**20
_EXTENSIONS = (".npy", ".npz", ".csv")


class InputError(Exception):
    """A file that cannot serve as logits or labels: reported in one line, exit status 2."""


def load(path: str, name: str, metavar: str = "") -> np.ndarray:
    """The array in `path`; `name` ("logits" or "labels") picks one out of an .npz archive.

    Messages call the file `metavar` (default: `name` in capitals, as the usage line does).
    """
    metavar = metavar or name.upper()
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InputError(f"{metavar} {path!r} is not a .npy, .npz or .csv file")
    try:
        if suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                keys = list(archive.keys())
                if name in keys or len(keys) == 1:
                    return np.asarray(archive[name if name in keys else keys[0]])
                raise InputError(f"{path!r} holds arrays {keys}; name one {name!r}")
        return _load_csv(path)
    except (OSError, ValueError, EOFError) as error:  # missing, unreadable, or not an array
        raise InputError(f"cannot read {metavar} {path!r}: {error}") from None


def _load_csv(path: str) -> np.ndarray:
    """Numbers separated by commas; one header line is skipped if it is not numbers."""
    try:
        return np.loadtxt(path, delimiter=",", ndmin=1)
    except ValueError:
        return np.loadtxt(path, delimiter=",", ndmin=1, skiprows=1)


def _nonfinite_rows(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Which samples hold a NaN or an infinite logit or label (a boolean per sample)."""
    bad: np.ndarray = ~np.all(np.isfinite(logits), axis=1)
    if np.issubdtype(labels.dtype, np.inexact):
        bad |= ~np.isfinite(labels)
    return bad


def checked(
    logits: np.ndarray,
    labels: np.ndarray,
    drop_nonfinite: bool = False,
    names: tuple[str, str] = ("LOGITS", "LABELS"),
) -> tuple[np.ndarray, np.ndarray, int]:
    """(logits as samples x classes reals, labels as one integer per sample, samples dropped).

    A sample whose logits or label hold a NaN or an infinity is bad input (a temperature cannot
    be fitted to it, and the figures would not count it): an `InputError` naming how many there
    are and the first, unless `drop_nonfinite`, which drops them and says how many. `names` are
    what the messages call the two files (the command line's metavars).
    """
    z_name, y_name = names
    if logits.ndim == 1:  # a one-column CSV or a single sample's row would be ambiguous
        raise InputError(f"{z_name} must be samples x classes, got shape {logits.shape}")
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.number):
        raise InputError(
            f"{z_name} must be a 2-d array of numbers, got {logits.dtype} {logits.shape}"
        )
    if np.iscomplexobj(logits):
        raise InputError(f"{z_name} must be real numbers")
    if 0 in logits.shape:
        raise InputError(f"{z_name} hold no sample or no class: shape {logits.shape}")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.ndim != 1 or len(labels) != len(logits):
        raise InputError(
            f"{y_name} must hold one class per sample ({len(logits)}), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
        raise InputError(f"{y_name} must be integer class indices")
    bad = _nonfinite_rows(logits, labels)
    dropped = int(np.count_nonzero(bad))
    of_files = "" if names == ("LOGITS", "LABELS") else f" of {z_name} and {y_name}"
    if dropped and not drop_nonfinite:
        first = int(np.argmax(bad))
        raise InputError(
            f"{dropped} of {len(bad)} samples{of_files} hold a NaN or infinite logit or label, "
            f"the first in row {first} (counting from 0); pass --drop-nonfinite to leave them out"
        )
    if dropped == len(bad):
        raise InputError(f"all {dropped} samples{of_files} hold a NaN or infinite logit or label")
    logits, labels = logits[~bad], labels[~bad]
    if not np.issubdtype(labels.dtype, np.integer):
        # A CSV reads as floats: accept those that are whole numbers.
        if not np.all(labels == np.round(labels)):
            raise InputError(f"{y_name} must be integer class indices")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise InputError(f"{y_name} must lie in [0, {logits.shape[1]}), the classes of {z_name}")
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    return logits, labels, dropped


def read_set(
    logits_path: str,
    labels_path: str,
    drop_nonfinite: bool,
    names: tuple[str, str] = ("LOGITS", "LABELS"),
) -> SampleSet:
    """The checked samples of two files (`checked`), named by the files."""
    logits, labels, dropped = checked(
        load(logits_path, "logits", names[0]),
        load(labels_path, "labels", names[1]),
        drop_nonfinite,
        names,
    )
    source = logits_path if logits_path == labels_path else f"{logits_path} and {labels_path}"
    return SampleSet(logits, labels, source, dropped=dropped)


def hold_out(samples: SampleSet, fraction: float, seed: int) -> tuple[SampleSet, SampleSet]:
    """(the samples to fit on, the `fraction` held out to measure on), drawn at random.

    The held-out rows are the first ``round(fraction * n)`` of
    ``numpy.random.default_rng(seed).permutation(n)``, in that order; the rest, in theirs, are
    fitted on. Both keep at least one sample, or an `InputError` says why not.
    """
    n = samples.logits.shape[0]
    held = round(fraction * n)
    if not 0 < held < n:
        raise InputError(
            f"--test-fraction {fraction:g} of {n} samples leaves "
            f"{'no sample to measure on' if held == 0 else 'no sample to fit on'}"
        )
    order = np.random.default_rng(seed).permutation(n)
    test_rows, fit_rows = order[:held], np.sort(order[held:])
    split = f"--test-fraction {fraction:g} of {n}, --seed {seed}"
    fit = samples._replace(
        logits=samples.logits[fit_rows],
        labels=samples.labels[fit_rows],
        rows=f"those not held out ({split})",
    )
    test = samples._replace(
        logits=samples.logits[test_rows],
        labels=samples.labels[test_rows],
        rows=f"held out at random ({split})",
        dropped=0,
    )
    return fit, test


@contextlib.contextmanager
def _progress_bar(quiet: bool) -> Iterator[Any]:
    """A two-step tqdm bar on stderr, or None when quiet or tqdm (the cli extra) is missing.

    The bar is a courtesy on large inputs: calibrate works on a base install without it.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        quiet = True
    if quiet:
        yield None
        return
    with tqdm(total=2, file=sys.stderr, desc="calibrate", unit="step") as progress:
        yield progress


def _sample_sets(args: argparse.Namespace) -> tuple[SampleSet, SampleSet | None]:
    """(the set to fit on, the set to measure on, None for the same one), as the options say."""
    samples = read_set(args.logits, args.labels, args.drop_nonfinite)
    if args.test:
        test_logits, test_labels = args.test
        test = read_set(
            test_logits, test_labels, args.drop_nonfinite, names=("TEST_LOGITS", "TEST_LABELS")
        )
        if test.logits.shape[1] != samples.logits.shape[1]:
            raise InputError(
                f"TEST_LOGITS hold {test.logits.shape[1]} classes and LOGITS "
                f"{samples.logits.shape[1]}: the two sets must share their classes"
            )
        return samples, test
    if args.test_fraction is not None:
        return hold_out(samples, args.test_fraction, 0 if args.seed is None else args.seed)
    return samples, None


def _check_options(args: argparse.Namespace) -> None:
    """Usage errors (exit status 2, with the usage) found before any file is read."""
    parser = args.command_parser
    if args.n_bins < 1:
        parser.error(f"--n-bins must be at least 1, got {args.n_bins}")
    fraction = args.test_fraction
    if fraction is not None and not 0 < fraction < 1:
        parser.error(f"--test-fraction must lie strictly between 0 and 1, got {fraction:g}")
    if fraction is None and args.seed is not None:
        parser.error("--seed draws the samples of --test-fraction, which is not given")
    check_output_folders(parser, args)
    if args.plot:
        import matplotlib  # noqa: F401  (a missing extra should stop us before the work)


def run(args: argparse.Namespace) -> int:
    """Load, fit, report and write the requested files; the exit status."""
    _check_options(args)
    try:
        fit, test = _sample_sets(args)
    except InputError as error:
        print(f"xpsoftmax calibrate: error: {error}", file=sys.stderr)
        return 2
    quiet = args.no_progress or fit.logits.size < PROGRESS_ENTRIES
    with _progress_bar(quiet) as progress:
        result = figures(fit, test, args.n_bins, progress)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
