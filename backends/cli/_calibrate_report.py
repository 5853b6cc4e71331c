"""The figures of ``xpsoftmax calibrate``: what it fits, what it measures, and how it says so.

The temperature is fitted on one set of samples and the figures before and after are measured
on another (or, when the user gives one set only, on the same one, which the report says). Both
sets are named in the printed report and in the JSON file. `figures` computes everything,
`format_report` prints it, `plot` draws the reliability diagrams.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

import xpsoftmax

#: What an answer without a finite optimum means (see fit_temperature).
_NO_OPTIMUM = {
    0.0: "every label is its sample's largest logit: the loss falls as T goes to 0",
    math.inf: "the labels' logits are no better than uniform guessing: the loss falls as T grows",
}


class SampleSet(NamedTuple):
    """Checked samples and how the report names them.

    `source` names the files ("logits.npy and labels.npy"); `rows` says which of their samples
    are in the set ("" for all of them); `dropped` counts the samples left out as non-finite.
    """

    logits: np.ndarray
    labels: np.ndarray
    source: str
    rows: str = ""
    dropped: int = 0

    def describe(self) -> dict[str, Any]:
        """The set as the JSON file names it."""
        return {
            "source": self.source,
            "rows": self.rows or "all",
            "samples": int(self.logits.shape[0]),
            "dropped": self.dropped,
        }


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


def ece_rose_note(before: dict[str, Any], after: dict[str, Any], n_bins: int) -> str | None:
    """One line when the ECE rose while the NLL fell, saying why that can happen; else None."""
    if not (after["ece"] > before["ece"] and after["nll"] < before["nll"]):
        return None
    samples = int(np.sum(before["curve"]["count"]))
    return (
        f"the ECE rose ({before['ece']:.4f} -> {after['ece']:.4f}) while the NLL fell: T"
        " minimises the NLL, which also scores how unlikely the wrong predictions made their"
        " labels, and can leave the winners less confident than they are right; the ECE looks"
        f" only at the winners, in bins of few samples ({samples} in {n_bins} here), so it also"
        " moves by chance"
    )


def figures(
    fit: SampleSet, test: SampleSet | None, n_bins: int, progress: Any = None
) -> dict[str, Any]:
    """Every figure the command prints and writes, as a JSON-ready dictionary.

    T is fitted on `fit`; the figures before and after are measured on `test`, or on `fit`
    itself when `test` is None (which a note says). `progress`, a tqdm bar of two steps
    (fitting, measuring), is advanced when given.
    """
    if progress is not None:
        progress.set_description_str("fitting the temperature")
    temperature = float(xpsoftmax.fit_temperature(fit.logits, fit.labels))
    if progress is not None:
        progress.update()
        progress.set_description_str("measuring")
    measured = fit if test is None else test
    result: dict[str, Any] = {
        "fit_set": fit.describe(),
        "test_set": "the same samples" if test is None else test.describe(),
        "classes": int(fit.logits.shape[1]),
        "n_bins": n_bins,
        "temperature": temperature if math.isfinite(temperature) else None,
        "before": figures_at(measured.logits, measured.labels, 1.0, n_bins),
        "after": None,
        "notes": [],
    }
    if math.isnan(temperature):
        result["notes"].append("no finite loss at any temperature: a NaN or +inf logit")
    elif temperature in _NO_OPTIMUM:
        result["notes"].append(f"T = {temperature:g}: {_NO_OPTIMUM[temperature]}")
    else:
        result["after"] = figures_at(measured.logits, measured.labels, temperature, n_bins)
        rose = ece_rose_note(result["before"], result["after"], n_bins)
        if rose:
            result["notes"].append(rose)
    if test is None:
        result["notes"].append(
            "T was fitted on the samples it is measured on, which flatters the figures after;"
            " --test or --test-fraction measures on samples the fit never saw"
        )
    if progress is not None:
        progress.update()
    return result


def _set_line(described: dict[str, Any] | str) -> str:
    if isinstance(described, str):
        return described
    line = f"{described['samples']} samples of {described['source']}"
    dropped = described["dropped"]
    if described["rows"] != "all":
        line += f", {described['rows']}"
        if dropped:  # from the whole file, before the hold-out
            line += f"; {dropped} dropped before: NaN or infinite"
    elif dropped:
        total = described["samples"] + dropped
        line += f" ({dropped} of {total} dropped: NaN or infinite)"
    return line


def format_report(result: dict[str, Any]) -> str:
    """The report the command prints: both sets, T, the figures before and after, the notes."""
    before, after = result["before"], result["after"] or {}
    temperature = result["temperature"]
    lines = [
        f"{'fitted on':14} {_set_line(result['fit_set'])}",
        f"{'measured on':14} {_set_line(result['test_set'])}",
        f"{'classes':14} {result['classes']}",
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
    lines += [f"note: {note}" for note in result["notes"]]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str, title: str = "") -> None:
    """Reliability diagrams before and after scaling, each over its confidence histogram.

    Without `title`, the figure names the set T was fitted on and the one it is measured on.
    """
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
    fig.suptitle(
        title
        or f"T fitted on {_set_line(result['fit_set'])}\n"
        f"measured on {_set_line(result['test_set'])}",
        fontsize="medium",
    )
    # One legend for every diagram, below them all: inside a diagram it would cover a bar.
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize="small", frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
