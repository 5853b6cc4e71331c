"""The Large vocabularies page's worked example: a next-word model on the standard library's
documentation, trained with linear_cross_entropy, follows the materialised loss, in float64,
within 1e-9 relative at every step, in PyTorch and in JAX. A short version: a few modules' text
(a vocabulary of a few thousand words), a few steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_module

SCRIPTS = ROOT / "docs" / "scripts"
MODULES = ["bisect", "csv", "fractions", "heapq", "json", "statistics", "string", "textwrap"]


def _scripts() -> tuple[Any, Any]:
    corpus = load_module("stdlib_corpus", SCRIPTS / "stdlib_corpus.py")
    return corpus, load_module("next_word_training", SCRIPTS / "next_word_training.py")


def test_the_corpus_is_words_of_the_modules_docs() -> None:
    corpus, _ = _scripts()
    ids, vocabulary = corpus.load(MODULES)
    assert len(vocabulary) > 1000
    assert {"heapq", "Fraction", "median", "dedent"} <= set(vocabulary)
    assert np.array_equal(np.unique(ids), np.arange(len(vocabulary)))  # every word is used
    counts = np.bincount(ids)
    assert np.all(np.diff(counts) <= 0)  # the most frequent word first
    assert not any(word.startswith("x7f") for word in vocabulary)  # no object addresses


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_loss_curve_matches_the_materialised_loss(framework: str) -> None:
    pytest.importorskip(framework)
    if framework == "jax":
        pytest.importorskip("optax")
    corpus, example = _scripts()
    ids, vocabulary = corpus.load(MODULES)
    ours, materialised = example.train(framework, ids, len(vocabulary), steps=8, batch=256)
    assert ours[-1] < ours[0] - 0.05  # it learns
    assert abs(ours[0] - np.log(len(vocabulary))) < 0.5  # starts near uniform
    assert example.relative_gap(ours, materialised) <= 1e-9


def test_writes_to_a_temporary_folder_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example leaves the committed figures alone unless --update-docs is given."""
    import tempfile
    from pathlib import Path

    _, example = _scripts()
    folders: list[Path] = []
    monkeypatch.setattr(example, "report", lambda steps, batch, out: folders.append(out))
    example.main(["--steps", "1"])
    example.main(["--update-docs"])
    assert folders[0].is_dir()
    assert folders[0].resolve().is_relative_to(Path(tempfile.gettempdir()).resolve())
    assert folders[1] == example.OUT == ROOT / "docs" / "_generated"
    folders[0].rmdir()


def test_the_memory_sentence_follows_the_figures() -> None:
    _, example = _scripts()
    memory = {
        "torch/xpsoftmax": 30 * 2**20,
        "torch/reference": 120 * 2**20,
        "jax/xpsoftmax": 50 * 2**20,
        "jax/reference": 100 * 2**20,
    }
    sentence = example.memory_sentence(memory, 512, 20480)
    assert "80 MiB in float64" in sentence  # 512 x 20,480 x 8 bytes
    assert "0.25 of the materialised loss's in PyTorch" in sentence
    assert "0.50 of the materialised loss's in JAX" in sentence
