"""Regenerate the calibration page's figures from a real classifier and a timing.

Trains a multilayer perceptron on scikit-learn's handwritten digits (the data ship with
scikit-learn; fixed seeds, so every run gives the same model), fits the temperature on a
held-out calibration split and measures NLL, ECE and accuracy on a separate test split before
and after, with the code of ``xpsoftmax calibrate --test``. Writes

* ``docs/_generated/calibration_table.rst``: those figures;
* ``docs/_generated/calibration_cost.rst``: the time of `fit_temperature` on 20000 x 1000
  float32 logits in units of one `cross_entropy` call (best of 5), per library;
* ``docs/_generated/calibration_reliability.png``: the reliability diagrams before and after,
  drawn by the ``xpsoftmax calibrate --plot`` code.

The docs build only includes the files; run this script to refresh them (``--skip-cost``
leaves the timings as they are)::

    python docs/scripts/calibration_report.py
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from xpsoftmax.backends.cli import calibrate

import xpsoftmax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rst_tables

OUT = Path(__file__).resolve().parent.parent / "_generated"
SEED = 0


def digits_logits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(calibration logits, labels, test logits, labels) of an over-trained MLP on the digits.

    15% of the 1797 images train the network; the rest is split in halves, one held out to fit
    T, one to test. No weight decay and 1000 epochs on so few images: the training loss goes
    to ~0 and the network becomes sure of itself, right or wrong, on images it has not seen.
    """
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, train_size=0.15, random_state=SEED, stratify=y
    )
    x_cal, x_test, y_cal, y_test = train_test_split(
        x_rest, y_rest, train_size=0.5, random_state=SEED, stratify=y_rest
    )
    model = MLPClassifier(
        hidden_layer_sizes=(256,),
        alpha=0.0,
        learning_rate_init=0.01,
        max_iter=1000,
        tol=0.0,
        n_iter_no_change=1000,
        random_state=SEED,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # we train past convergence on purpose
        model.fit(x_train, y_train)

    def logits(features: np.ndarray) -> np.ndarray:
        # The network's scores before its softmax (predict_proba would be softmax of these).
        hidden = np.maximum(features @ model.coefs_[0] + model.intercepts_[0], 0.0)
        return np.asarray(hidden @ model.coefs_[1] + model.intercepts_[1])

    return logits(x_cal), y_cal, logits(x_test), y_test


def best_time(fn: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fit_cost() -> list[tuple[str, float, float]]:
    """(library, fit_temperature seconds, cross_entropy seconds) on 20000 x 1000 float32 logits.

    NumPy, PyTorch (eager) and JAX under ``jax.jit`` (the fixed-step path), those installed.
    """
    rng = np.random.default_rng(SEED)
    n, k = 20000, 1000
    labels = rng.integers(0, k, n)
    logits = (rng.normal(size=(n, k)) * 3).astype(np.float32)
    logits[np.arange(n), labels] += (6 * rng.random(n)).astype(np.float32)
    cases: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
        (
            "NumPy",
            lambda: xpsoftmax.fit_temperature(logits, labels),
            lambda: xpsoftmax.cross_entropy(logits, labels),
        )
    ]
    if importlib.util.find_spec("torch"):
        import torch

        t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
        cases.append(
            (
                "PyTorch",
                lambda: xpsoftmax.fit_temperature(t_logits, t_labels),
                lambda: xpsoftmax.cross_entropy(t_logits, t_labels),
            )
        )
    if importlib.util.find_spec("jax"):
        import jax

        j_logits, j_labels = jax.numpy.asarray(logits), jax.numpy.asarray(labels)
        fit, loss = jax.jit(xpsoftmax.fit_temperature), jax.jit(xpsoftmax.cross_entropy)
        cases.append(
            (
                "JAX, jax.jit (30 fixed steps)",
                lambda: fit(j_logits, j_labels).block_until_ready(),
                lambda: loss(j_logits, j_labels).block_until_ready(),
            )
        )
    results = []
    for name, fit_call, loss_call in cases:
        fit_call(), loss_call()  # compile and warm up outside the timing
        results.append((name, best_time(fit_call), best_time(loss_call)))
    return results


def write_table(result: dict[str, Any]) -> None:
    """The digits table: both sets, T, and the test set's figures before and after."""
    before, after = result["before"], result["after"]
    intro = (
        f"Fitted on {result['fit_set']['samples']} held-out images: "
        f"**T = {result['temperature']:.4f}**. Measured on "
        f"{result['test_set']['samples']} other test images ({result['n_bins']} bins):"
    )
    cells = [[name, f"{before[key]:.4f}", f"{after[key]:.4f}"] for name, key in _ROWS]
    table = rst_tables.list_table(["test set", "before (T = 1)", "after"], cells)
    notes = [f"Note: {note}." for note in result["notes"]]
    notes = ["", *notes] if notes else []
    rst_tables.write("calibration_table.rst", [_GENERATED, "", intro, "", *table, *notes])


_ROWS = (("NLL", "nll"), ("ECE", "ece"), ("accuracy", "accuracy"))
_GENERATED = ".. Generated by docs/scripts/calibration_report.py; do not edit."


def write_cost_table(cost: list[tuple[str, float, float]]) -> None:
    """The time of a fit in units of one cross_entropy call, per library."""
    header = [
        "library",
        "fit_temperature",
        "one cross_entropy",
        "cost in cross-entropy evaluations",
    ]
    cells = [
        [name, f"{fit * 1e3:.0f} ms", f"{one_loss * 1e3:.0f} ms", f"{fit / one_loss:.1f}"]
        for name, fit, one_loss in cost
    ]
    machine = f"20000 x 1000 float32 logits, {platform.machine()} CPU, best of 5:"
    table = rst_tables.list_table(header, cells)
    rst_tables.write("calibration_cost.rst", [_GENERATED, "", machine, "", *table])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--skip-cost",
        action="store_true",
        help="keep calibration_cost.rst as it is: its timings want a quiet machine",
    )
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    cal_logits, cal_labels, test_logits, test_labels = digits_logits()
    fit = calibrate.SampleSet(cal_logits, cal_labels, "the calibration images")
    test = calibrate.SampleSet(test_logits, test_labels, "the test images")
    result = calibrate.figures(fit, test, 15)
    write_table(result)
    calibrate.plot(
        result,
        str(OUT / "calibration_reliability.png"),
        title="MLP on the digits: test set, T fitted on the calibration set",
    )
    print(f"T = {result['temperature']:.4f}")
    if not args.skip_cost:
        cost = fit_cost()
        write_cost_table(cost)
        print(f"cost {[(name, fit / loss) for name, fit, loss in cost]}")


if __name__ == "__main__":
    main()
