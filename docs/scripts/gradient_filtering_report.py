"""Measure gradient filtering (``filter_eps``) on a trained-like head: the Large vocabularies
page's table of its bias and the time it saves.

Run from the repository root (the docs build never runs it; its output is committed)::

    python docs/scripts/gradient_filtering_report.py                 # ~10 min on 2 cores
    python docs/scripts/gradient_filtering_report.py --tokens 512    # a quick look

The heads are GPT-2-sized classifiers (D = 768, V = 50,257) whose probabilities look like a
trained language model's (`trained_like`): a frequency prior over the vocabulary, Zipf's law
with the most frequent class first (as a byte-pair vocabulary is roughly ordered), plus a
context-specific part that pulls each token towards its target, so that the target gets about
half the mass and the entropy is a few nats. In the "spread" head that part's logits spread
by 2, which scatters non-negligible probabilities over the whole vocabulary; in the
"prior-led" head by 1, so that the rare classes stay rare for every token. For float32 and
bfloat16 hidden states and weights, and each ``filter_eps``, PyTorch's autograd takes the mean
loss's gradients (computed in the forward pass, where the filter applies); the table gives the
share of tiles of classes skipped, the largest error of each gradient relative to its largest
entry against the exact gradients (PyTorch's own loss of the float64 logits), the same for the
unfiltered call (the dtype's own
rounding), and the time against the unfiltered call's, the best of interleaved rounds in one
process. It writes ``docs/_generated/gradient_filtering_table.rst``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

import xpsoftmax

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "asv_bench" / "benchmarks"))
sys.path.insert(0, str(ROOT / "docs" / "scripts"))
import linear_cross_entropy as cases
import rst_tables

D, V = 768, 50257


#: The two heads (`trained_like`): how far the context-specific logits spread, and how hard
#: each token is pulled towards its target (the target gets about half the mass in both).
HEADS = {"spread": (2.0, 8.0), "prior-led": (1.0, 6.0)}


def trained_like(
    tokens: int, spread: float = 2.0, pull: float = 8.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """hidden (tokens, D), weight (V, D) and targets of a head whose softmax looks trained:
    logits = log prior (Zipf, exponent 1.1, through a constant first feature) + a random part
    whose standard deviation is `spread`, each token's hidden state pulled towards its
    target's weight row by `pull`."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, V + 1)
    prior = ranks**-1.1
    prior /= prior.sum()
    weight = rng.standard_normal((V, D)) / np.sqrt(D)
    weight[:, 0] = np.log(prior)
    target = rng.choice(V, size=tokens, p=prior)
    hidden = spread * rng.standard_normal((tokens, D))
    hidden += pull * weight[target] / np.sum(weight[target, 1:] ** 2, axis=1, keepdims=True)
    hidden[:, 0] = 1.0
    return hidden, weight, target


def summary(hidden: np.ndarray, weight: np.ndarray, target: np.ndarray) -> str:
    """The target's mean probability and the mean share of classes below float32's eps / 32."""
    logits = hidden @ weight.T
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    below = np.mean(p < np.finfo(np.float32).eps / 32)
    return (
        f"the target's mean probability {np.mean(p[np.arange(len(target)), target]):.2f}; "
        f"{100 * below:.0f} % of the probabilities below float32's eps / 32"
    )


def gradients(h: Any, w: Any, y: Any, eps: float | str | None) -> list[np.ndarray]:
    import torch

    leaves = [h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()]
    loss = xpsoftmax.linear_cross_entropy(*leaves, y, filter_eps=eps)
    return [g.double().numpy() for g in torch.autograd.grad(loss, leaves)]


def materialised(hidden: np.ndarray, weight: np.ndarray, y: Any) -> list[np.ndarray]:
    """The exact gradients: PyTorch's own loss of the float64 logits."""
    import torch

    leaves = [torch.tensor(a, requires_grad=True) for a in (hidden, weight)]
    loss = torch.nn.functional.cross_entropy(leaves[0] @ leaves[1].T, y)
    return [g.numpy() for g in torch.autograd.grad(loss, leaves)]


def skipped_share(h: Any, w: Any, y: Any, eps: float) -> float:
    """The share of tiles (a block of tokens by `FILTER_CLASSES` classes) that the filter skips:
    counted on the float64 softmax, by the rule the kernel applies."""
    from xpsoftmax._kernels.blocks import block_bounds, block_rows
    from xpsoftmax._kernels.filtering import FILTER_CLASSES

    hidden, weight = h.double().numpy(), w.double().numpy()
    rows = block_rows(len(hidden), D, V, None, kind="gradients")
    kept = total = 0
    for start, stop in block_bounds(len(hidden), rows):
        logits = hidden[start:stop] @ weight.T
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(stop - start), y.numpy()[start:stop]] -= 1.0
        significant = np.any(np.abs(p) >= eps, axis=0)
        for a, b in block_bounds(V, FILTER_CLASSES):
            kept += bool(np.any(significant[a:b]))
            total += 1
    return 1.0 - kept / total


def errors(got: list[np.ndarray], exact: list[np.ndarray]) -> str:
    return " / ".join(
        f"{np.max(np.abs(g - e)) / np.max(np.abs(e)):.1e}" for g, e in zip(got, exact, strict=True)
    )


def rows(
    name: str, hidden: np.ndarray, weight: np.ndarray, target: np.ndarray, rounds: int
) -> list[str]:
    """The table's rows for one head: each dtype and filter_eps against the unfiltered call."""
    import torch

    y = torch.tensor(target)
    exact = materialised(hidden, weight, y)
    cells: list[list[str]] = []
    for dtype, settings in (("float32", [None, "auto", 1e-6]), ("bfloat16", [None, "auto"])):
        h = torch.tensor(hidden).to(getattr(torch, dtype))
        w = torch.tensor(weight).to(getattr(torch, dtype))
        runs = {str(e): functools.partial(gradients, h, w, y, e) for e in settings}
        for run in runs.values():
            run()
        times = cases.best_times(runs, rounds)
        for eps in settings:
            value = float(torch.finfo(h.dtype).eps) / 32 if eps == "auto" else eps
            skipped = "0 %" if value is None else f"{100 * skipped_share(h, w, y, value):.0f} %"
            shown = "None" if eps is None else (f"auto ({value:.1e})" if eps == "auto" else eps)
            cells.append(
                [
                    name,
                    dtype,
                    shown,
                    skipped,
                    errors(gradients(h, w, y, eps), exact),
                    f"{times[str(eps)] / times['None']:.2f}x",
                ]
            )
            print(cells[-1], f"load {os.getloadavg()[0]:.1f}", flush=True)
    return cells


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    cells: list[list[str]] = []
    notes = [f"{args.tokens:,} tokens, D = {D}, V = {V:,}."]
    for name, (spread, pull) in HEADS.items():
        hidden, weight, target = trained_like(args.tokens, spread, pull)
        notes.append(f"{name} (logits spread by {spread:g}): {summary(hidden, weight, target)}.")
        print(notes[-1], flush=True)
        cells += rows(name, hidden, weight, target, args.rounds)
    header = [
        "head",
        "dtype",
        "filter_eps",
        "tiles skipped",
        "error of d_hidden / d_weight",
        "time",
    ]
    table = rst_tables.list_table(header, cells, [":widths: 16 14 19 14 25 12"])
    load = f"The machine's 1-minute load average while timing: {os.getloadavg()[0]:.1f}."
    rst_tables.write("gradient_filtering_table.rst", [" ".join(notes), "", *table, "", load])


if __name__ == "__main__":
    main()
