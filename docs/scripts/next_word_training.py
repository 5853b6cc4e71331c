"""Next-word prediction on the standard library's documentation with linear_cross_entropy.

The worked example of the Large vocabularies page (and the test that keeps it true,
``tests/test_large_vocabularies_example.py``). The text is the words of the Python standard
library's pydoc pages (``docs/scripts/stdlib_corpus.py``: nothing is downloaded; more than
20,000 distinct words). The model reads the two previous words: their embeddings (32 numbers
each) concatenated, one tanh layer of D = 64, and the classifier over the vocabulary, whose loss
is ``xpsoftmax.linear_cross_entropy(h, W, y, linear_bias=b, chunk_size=256)``. It is trained
in float64 with Adam on random batches of positions, the same batches and the same NumPy start
in PyTorch and in JAX;
Adam runs in NumPy on the gradients each framework returns, so the two runs differ only in the
framework. At every step the materialised loss is computed at the same parameters,
``F.cross_entropy(h @ W.T + b, y)`` in PyTorch and optax's
``softmax_cross_entropy_with_integer_labels`` of the same logits in JAX, and the curves are
compared.

Run from the repository root (the docs build never runs it)::

    python docs/scripts/next_word_training.py                  # 20 steps of 512 positions
    python docs/scripts/next_word_training.py --update-docs    # the same, into the docs

It writes ``large_vocabularies_example.png`` (the loss curves and the loss memory of each head)
and ``large_vocabularies_example.rst`` (a table of the same, and the sentence on the memory
that the page includes) to a new temporary folder, whose name it prints, or with
``--update-docs`` to ``docs/_generated/``, where the committed ones live.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import xpsoftmax

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "docs" / "_generated"
CONTEXT = 2
EMBED = 32
HIDDEN = 64
LEARNING_RATE = 0.01
#: Tokens per block of linear_cross_entropy. The rule from the shapes keeps a block's logits no
#: larger than the hidden states, which for D = 64 and 20,000 words is 3 tokens a block: far too
#: small to be quick. 256 tokens make blocks of 40 MB in float64.
CHUNK = 256
#: One step: (parameters, batch positions) -> (our loss, the materialised loss, gradients).
Step = Callable[[list[np.ndarray], np.ndarray], tuple[float, float, list[np.ndarray]]]


def initial_parameters(vocabulary_size: int, seed: int = 0) -> list[np.ndarray]:
    """Embeddings (V, 32), hidden layer (64, D) and its bias, classifier (V, D) and its bias."""
    rng = np.random.default_rng(seed)
    embedding = rng.normal(scale=0.1, size=(vocabulary_size, EMBED))
    layer = rng.normal(scale=1 / np.sqrt(CONTEXT * EMBED), size=(CONTEXT * EMBED, HIDDEN))
    classifier = rng.normal(scale=1 / np.sqrt(HIDDEN), size=(vocabulary_size, HIDDEN))
    return [embedding, layer, np.zeros(HIDDEN), classifier, np.zeros(vocabulary_size)]


def batches(n_tokens: int, steps: int, batch: int, seed: int = 1) -> np.ndarray:
    """(steps, batch) positions of words to predict, each with CONTEXT words before it."""
    return np.random.default_rng(seed).integers(CONTEXT, n_tokens, size=(steps, batch))


def torch_step(ids: np.ndarray) -> Step:
    import torch
    import torch.nn.functional as F

    corpus = torch.tensor(ids)
    offsets = torch.arange(CONTEXT, 0, -1)

    def step(params: list[np.ndarray], positions: np.ndarray) -> Any:
        tensors = [torch.tensor(p, requires_grad=True) for p in params]
        embedding, layer, layer_bias, classifier, bias = tensors
        where = torch.tensor(positions)
        context = embedding[corpus[where[:, None] - offsets]].reshape(len(positions), -1)
        hidden = torch.tanh(context @ layer + layer_bias)
        target = corpus[where]
        loss = xpsoftmax.linear_cross_entropy(
            hidden, classifier, target, linear_bias=bias, chunk_size=CHUNK
        )
        gradients = torch.autograd.grad(loss, tensors)
        with torch.no_grad():
            materialised = F.cross_entropy(hidden @ classifier.T + bias, target)
        return float(loss.detach()), float(materialised), [g.numpy() for g in gradients]

    return step


def jax_step(ids: np.ndarray) -> Step:
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
    corpus = jnp.asarray(ids)
    offsets = jnp.arange(CONTEXT, 0, -1)

    def hidden_and_target(params: list[Any], where: Any) -> tuple[Any, Any]:
        embedding, layer, layer_bias, _, _ = params
        context = embedding[corpus[where[:, None] - offsets]].reshape(where.shape[0], -1)
        return jnp.tanh(context @ layer + layer_bias), corpus[where]

    def ours(params: list[Any], where: Any) -> Any:
        hidden, target = hidden_and_target(params, where)
        return xpsoftmax.linear_cross_entropy(
            hidden, params[3], target, linear_bias=params[4], chunk_size=CHUNK
        )

    def materialised(params: list[Any], where: Any) -> Any:
        hidden, target = hidden_and_target(params, where)
        logits = hidden @ params[3].T + params[4]
        return optax.softmax_cross_entropy_with_integer_labels(logits, target).mean()

    ours_and_gradients = jax.jit(jax.value_and_grad(ours))
    materialised_loss = jax.jit(materialised)

    def step(params: list[np.ndarray], positions: np.ndarray) -> Any:
        arrays = [jnp.asarray(p) for p in params]
        where = jnp.asarray(positions)
        loss, gradients = ours_and_gradients(arrays, where)
        reference = materialised_loss(arrays, where)
        return float(loss), float(reference), [np.asarray(g) for g in gradients]

    return step


def train(
    framework: str, ids: np.ndarray, vocabulary_size: int, steps: int, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """(our loss, the materialised loss) at each step's parameters, trained with our loss."""
    step = {"torch": torch_step, "jax": jax_step}[framework](ids)
    params = initial_parameters(vocabulary_size)
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    ours, materialised = [], []
    for t, positions in enumerate(batches(len(ids), steps, batch), start=1):
        loss, reference, gradients = step(params, positions)
        ours.append(loss)
        materialised.append(reference)
        for p, m, v, g in zip(params, first, second, gradients, strict=True):  # Adam, in place
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g * g
            p -= LEARNING_RATE * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return np.array(ours), np.array(materialised)


def relative_gap(ours: np.ndarray, materialised: np.ndarray) -> float:
    return float(np.max(np.abs(ours - materialised) / np.abs(materialised)))


def head_memory(batch: int, vocabulary_size: int) -> dict[str, int]:
    """Loss memory of the example's head (batch x D -> V, float64), forward + backward, ours and
    materialised, measured by the benchmarks' fresh-process harness."""
    sys.path.insert(0, str(ROOT / "asv_bench" / "benchmarks"))
    import linear_cross_entropy as cases

    shape = (batch, HIDDEN, vocabulary_size)
    return {
        f"{framework}/{implementation}": cases.loss_memory(
            framework, implementation, shape, "float64", CHUNK
        )
        for framework in ("torch", "jax")
        for implementation in ("xpsoftmax", "reference")
    }


def report(steps: int, batch: int, out: Path) -> None:
    sys.path.insert(0, str(HERE))
    import stdlib_corpus

    ids, vocabulary = stdlib_corpus.load()
    print(f"corpus: {len(ids):,} words, vocabulary {len(vocabulary):,}", flush=True)
    curves = {}
    for framework in ("torch", "jax"):
        curves[framework] = train(framework, ids, len(vocabulary), steps, batch)
        print(framework, "gap", relative_gap(*curves[framework]), flush=True)
    memory = head_memory(batch, len(vocabulary))
    print(memory, flush=True)
    write_table(curves, memory, len(ids), len(vocabulary), steps, batch, out)
    plot(curves, memory, len(vocabulary), batch, out)
    print(f"written to {out}", flush=True)


def write_table(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    memory: dict[str, int],
    n_tokens: int,
    vocabulary_size: int,
    steps: int,
    batch: int,
    out: Path,
) -> None:
    names = {"torch": "PyTorch", "jax": "JAX"}
    header = [
        "framework",
        "loss, first / last step",
        "largest relative gap to the materialised loss",
        "loss memory, xpsoftmax / materialised",
    ]
    cells = []
    for framework, (ours, materialised) in curves.items():
        mine, theirs = memory[f"{framework}/xpsoftmax"], memory[f"{framework}/reference"]
        cells.append(
            [
                names[framework],
                f"{ours[0]:.3f} / {ours[-1]:.3f}",
                f"{relative_gap(ours, materialised):.1e}",
                f"{mine / 2**20:.0f} / {theirs / 2**20:.0f} MiB",
            ]
        )
    sizes = (
        f"{n_tokens:,} words of text, a vocabulary of {vocabulary_size:,}; {steps} steps of "
        f"{batch:,} positions, float64."
    )
    sys.path.insert(0, str(HERE))
    import rst_tables

    lines = [sizes, "", *rst_tables.list_table(header, cells)]
    lines += ["", memory_sentence(memory, batch, vocabulary_size)]
    rst_tables.write("large_vocabularies_example.rst", lines, out)


def memory_sentence(memory: dict[str, int], batch: int, vocabulary_size: int) -> str:
    """What the memory figures say, from the figures themselves: the page includes it, so
    that its words follow a rerun's numbers."""
    logits = batch * vocabulary_size * 8 / 2**20
    shares = []
    for framework, name in (("torch", "PyTorch"), ("jax", "JAX")):
        ours, theirs = memory[f"{framework}/xpsoftmax"], memory[f"{framework}/reference"]
        shares.append(f"{ours / theirs:.2f} of the materialised loss's in {name}")
    return (
        f"At {batch:,} positions the head is small: its materialised logits take "
        f"{logits:.0f} MiB in float64, and the blocks of {CHUNK} tokens hold several "
        f"block-sized temporaries at once, so the loss memory is "
        f"{shares[0]} and {shares[1]}. The materialised loss grows with the tokens (the "
        "plot above) while ours is bounded by its block size."
    )


#: Where a relative gap of exactly 0 is drawn on the log-scale panel.
GAP_FLOOR = 1e-18


def plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    memory: dict[str, int],
    vocabulary_size: int,
    batch: int,
    out: Path,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 3.8), width_ratios=(3, 3, 2))
    styles = {"torch": ("PyTorch", "C0"), "jax": ("JAX", "C1")}
    for framework, (ours, materialised) in curves.items():
        name, colour = styles[framework]
        steps = np.arange(1, len(ours) + 1)
        left.plot(steps, ours, color=colour, label=f"{name}, linear_cross_entropy")
        left.plot(
            steps,
            materialised,
            "o",
            color=colour,
            markersize=3,
            fillstyle="none",
            label=f"{name}, materialised logits",
        )
        # The curves coincide to rounding, so what differs is drawn on its own; a gap of
        # exactly 0 sits at the panel's floor.
        gap = np.maximum(np.abs(ours - materialised) / np.abs(materialised), GAP_FLOOR)
        middle.semilogy(steps, gap, "o-", color=colour, markersize=3, label=f"{name}: ours")
    (torch_ours, _), (jax_ours, _) = curves["torch"], curves["jax"]
    between = np.maximum(np.abs(torch_ours - jax_ours) / np.abs(jax_ours), GAP_FLOOR)
    middle.semilogy(steps, between, "s--", color="grey", markersize=3, label="PyTorch vs JAX")
    middle.axhline(np.finfo(np.float64).eps, color="black", linewidth=0.8, linestyle=":")
    middle.text(steps[0], np.finfo(np.float64).eps * 1.3, "float64 eps", fontsize=7)
    middle.set_ylim(bottom=GAP_FLOOR / 2)
    middle.set_xlabel("step")
    middle.set_ylabel("relative gap to the materialised loss")
    middle.set_title("What differs: the gap per step (0 at the floor)", fontsize=9)
    middle.legend(fontsize=7)
    left.set_xlabel("step")
    left.set_ylabel("mean cross-entropy (nats)")
    left.set_title("Training loss at each step's parameters")
    left.legend(fontsize=7)
    labels, values, colours = [], [], []
    for framework in curves:
        name, colour = styles[framework]
        for implementation, text in (("xpsoftmax", "ours"), ("reference", "materialised")):
            labels.append(f"{name}\n{text}")
            values.append(memory[f"{framework}/{implementation}"] / 2**20)
            colours.append(colour if implementation == "xpsoftmax" else "grey")
    right.bar(labels, values, color=colours)
    right.set_ylabel("loss memory, MiB")
    right.set_title(f"Head {batch:,} x {HIDDEN} -> {vocabulary_size:,}, fwd + bwd", fontsize=9)
    right.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    figure.savefig(out / "large_vocabularies_example.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument(
        "--update-docs",
        action="store_true",
        help="write into docs/_generated (default: a new temporary folder)",
    )
    args = parser.parse_args(argv)
    out = OUT if args.update_docs else Path(tempfile.mkdtemp(prefix="next-word-"))
    report(args.steps, args.batch, out)


if __name__ == "__main__":
    main()
