"""``xpsoftmax calibrate``: fit a temperature to a model's logits and report its calibration.

Reads the logits (samples x classes) and the integer labels of a held-out set from .npy, .npz or
.csv files, fits the temperature T with `xpsoftmax.fit_temperature`, and prints T, the negative
log-likelihood and the expected calibration error before and after scaling, and the accuracy,
which temperature scaling never changes. ``--json`` writes the figures and the reliability curves;
``--plot`` draws the reliability diagrams before and after, each over a confidence histogram.
A file that cannot be read gives one line on stderr and exit status 2.

Examples
--------
.. code-block:: console

    $ xpsoftmax calibrate logits.npy labels.npy
    $ xpsoftmax calibrate held_out.npz held_out.npz --n-bins 10 --json report.json --plot report.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import xpsoftmax

__all__ = ["checked", "figures", "figures_at", "format_report", "load", "plot", "run"]

#: Inputs with at least this many logits show a progress bar on stderr.
PROGRESS_ENTRIES = 2**20
_EXTENSIONS = (".npy", ".npz", ".csv")


class InputError(Exception):
    """A file that cannot serve as logits or labels: reported in one line, exit status 2."""


def load(path: str, name: str) -> np.ndarray:
    """The array in `path`; `name` ("logits" or "labels") picks one out of an .npz archive."""
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise InputError(f"{name.upper()} {path!r} is not a .npy, .npz or .csv file")
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
        raise InputError(f"cannot read {name.upper()} {path!r}: {error}") from None


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
    logits: np.ndarray, labels: np.ndarray, drop_nonfinite: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(logits as samples x classes reals, labels as one integer per sample, samples dropped).

    A sample whose logits or label hold a NaN or an infinity is bad input (a temperature cannot
    be fitted to it, and the figures would not count it): an `InputError` naming how many there
    are and the first, unless `drop_nonfinite`, which drops them and says how many.
    """
    if logits.ndim == 1:  # a one-column CSV or a single sample's row would be ambiguous
        raise InputError(f"LOGITS must be samples x classes, got shape {logits.shape}")
    if logits.ndim != 2 or not np.issubdtype(logits.dtype, np.number):
        raise InputError(
            f"LOGITS must be a 2-d array of numbers, got {logits.dtype} {logits.shape}"
        )
    if np.iscomplexobj(logits):
        raise InputError("LOGITS must be real numbers")
    if 0 in logits.shape:
        raise InputError(f"LOGITS hold no sample or no class: shape {logits.shape}")
    labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    if labels.ndim != 1 or len(labels) != len(logits):
        raise InputError(
            f"LABELS must hold one class per sample ({len(logits)}), got shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
        raise InputError("LABELS must be integer class indices")
    bad = _nonfinite_rows(logits, labels)
    dropped = int(np.count_nonzero(bad))
    if dropped and not drop_nonfinite:
        first = int(np.argmax(bad))
        raise InputError(
            f"{dropped} of {len(bad)} samples hold a NaN or infinite logit or label, the first "
            f"in row {first} (counting from 0); pass --drop-nonfinite to leave them out"
        )
    if dropped == len(bad):
        raise InputError(f"all {dropped} samples hold a NaN or infinite logit or label")
    logits, labels = logits[~bad], labels[~bad]
    if not np.issubdtype(labels.dtype, np.integer):
        # A CSV reads as floats: accept those that are whole numbers.
        if not np.all(labels == np.round(labels)):
            raise InputError("LABELS must be integer class indices")
        labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise InputError(f"LABELS must lie in [0, {logits.shape[1]}), the classes of LOGITS")
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    return logits, labels, dropped


def figures_at(
    logits: np.ndarray, labels: np.ndarray, temperature: float, n_bins: int
) -> dict[str, Any]:
    """NLL, ECE, accuracy and the reliability curve at one temperature."""
    confidence, accuracy, count = xpsoftmax.calibration_curve(
        logits, labels, temperature=temperature, n_bins=n_bins
    )
    return {
        "nll": float(xpsoftmax.cross_entropy(logits, labels, temperature=temperature)),
        "ece": float(
            xpsoftmax.calibration_error(logits, labels, temperature=temperature, n_bins=n_bins)
        ),
        "accuracy": float(np.sum(accuracy * count) / np.sum(count)),
        "curve": {
            "confidence": confidence.tolist(),
            "accuracy": accuracy.tolist(),
            "count": count.tolist(),
        },
    }


#: What an answer without a finite optimum means (see fit_temperature).
_NO_OPTIMUM = {
    0.0: "every label is its sample's largest logit: the loss falls as T goes to 0",
    math.inf: "the labels' logits are no better than uniform guessing: the loss falls as T grows",
}


def figures(
    logits: np.ndarray, labels: np.ndarray, n_bins: int, progress: Any = None, dropped: int = 0
) -> dict[str, Any]:
    """Every figure the command prints and writes, as a JSON-ready dictionary.

    `progress`, a tqdm bar of two steps (fitting, measuring), is advanced when given; `dropped`
    counts the samples left out before (``--drop-nonfinite``), which the report states.
    """
    if progress is not None:
        progress.set_description_str("fitting the temperature")
    temperature = float(xpsoftmax.fit_temperature(logits, labels))
    if progress is not None:
        progress.update()
        progress.set_description_str("measuring")
    result: dict[str, Any] = {
        "samples": int(logits.shape[0]),
        "dropped": dropped,
        "classes": int(logits.shape[1]),
        "n_bins": n_bins,
        "temperature": temperature if math.isfinite(temperature) else None,
        "before": figures_at(logits, labels, 1.0, n_bins),
        "after": None,
        "note": None,
    }
    if math.isnan(temperature):
        result["note"] = "no finite loss at any temperature: a NaN or +inf logit"
    elif temperature in _NO_OPTIMUM:
        result["note"] = f"T = {temperature:g}: {_NO_OPTIMUM[temperature]}"
    else:
        result["after"] = figures_at(logits, labels, temperature, n_bins)
    if progress is not None:
        progress.update()
    return result


def format_report(result: dict[str, Any]) -> str:
    """The table the command prints."""
    before, after = result["before"], result["after"] or {}
    temperature = result["temperature"]
    samples = f"{result['samples']} samples"
    if result.get("dropped"):
        total = result["samples"] + result["dropped"]
        samples += f" used ({result['dropped']} of {total} dropped: NaN or infinite)"
    lines = [
        f"{samples}, {result['classes']} classes",
        f"{'temperature':14} {temperature:10.6g}" if temperature is not None else "temperature  -",
        f"{'':14} {'before':>10} {'after':>10}",
    ]
    for key, label in (
        ("nll", "NLL"),
        ("ece", f"ECE ({result['n_bins']} bins)"),
        ("accuracy", "accuracy"),
    ):
        after_value = f"{after[key]:10.6f}" if key in after else f"{'-':>10}"
        lines.append(f"{label:14} {before[key]:10.6f} {after_value}")
    lines.append("(temperature scaling never changes the predicted class, so neither the accuracy)")
    if result["note"]:
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str, title: str = "") -> None:
    """Reliability diagrams before and after scaling, each over its confidence histogram."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    sides = [("before (T = 1)", result["before"])]
    if result["after"] is not None:
        sides.append((f"after (T = {result['temperature']:.3g})", result["after"]))
    fig, axes = plt.subplots(
        2,
        len(sides),
        figsize=(5 * len(sides), 6),
        squeeze=False,
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1]},
    )
    n_bins = result["n_bins"]
    centres = (np.arange(n_bins) + 0.5) / n_bins
    for column, (label, side) in enumerate(sides):
        curve = side["curve"]
        diagram, histogram = axes[0, column], axes[1, column]
        filled = np.asarray(curve["count"]) > 0
        diagram.bar(
            centres[filled],
            np.asarray(curve["accuracy"])[filled],
            width=1 / n_bins,
            edgecolor="black",
            label="accuracy",
        )
        diagram.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
        diagram.plot(
            np.asarray(curve["confidence"])[filled],
            np.asarray(curve["accuracy"])[filled],
            "o",
            color="tab:red",
            label="(mean confidence, accuracy)",
        )
        diagram.set_title(f"{label}: ECE {side['ece']:.3f}, NLL {side['nll']:.3f}")
        diagram.set_ylabel("accuracy")
        diagram.set_xlim(0, 1)
        diagram.set_ylim(0, 1)
        histogram.bar(centres, curve["count"], width=1 / n_bins, edgecolor="black")
        histogram.set_xlabel("confidence (largest probability)")
        histogram.set_ylabel("samples")
    if title:
        fig.suptitle(title)
    # One legend for every diagram, below them all: inside a diagram it would cover a bar.
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


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


def run(args: argparse.Namespace) -> int:
    """Load, fit, report and write the requested files; the exit status."""
    parser = args.command_parser
    if args.n_bins < 1:
        parser.error("--n-bins must be at least 1")
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if path and not os.path.isdir(folder):
            parser.error(f"{option}: folder {folder!r} does not exist")
    if args.plot:
        import matplotlib  # noqa: F401  (a missing extra should stop us before the work)
    try:
        logits, labels, dropped = checked(
            load(args.logits, "logits"), load(args.labels, "labels"), args.drop_nonfinite
        )
    except InputError as error:
        print(f"xpsoftmax calibrate: error: {error}", file=sys.stderr)
        return 2
    quiet = args.no_progress or logits.size < PROGRESS_ENTRIES
    with _progress_bar(quiet) as progress:
        result = figures(logits, labels, args.n_bins, progress, dropped)
    print(f"xpsoftmax calibrate {args.logits} {args.labels}")
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
