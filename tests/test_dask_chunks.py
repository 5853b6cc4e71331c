"""Dask arrays whose slices each lie whole in one chunk: one task per chunk, the eager bits.

The usual layout of a softmax over classes (rows split, classes whole), and of a loss over
tokens. Each function then runs on every chunk's NumPy array: the result equals, bit for bit,
the eager function on that chunk (special values, masks, temperatures and class weights
included), the graph gains one layer (the function's), and nothing is computed while it is
built. Expected values come from the eager NumPy call on each chunk, and SciPy checks the whole.
"""

from __future__ import annotations

import itertools
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import special

import xpsoftmax

ROW_CHUNKS = (3, 3, 3, 1)  # along the rows; the classes lie whole in one chunk


def _refuse_to_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the library asked Dask to compute")


def _pieces(a: np.ndarray) -> list[np.ndarray]:
    bounds = np.cumsum((0, *ROW_CHUNKS))
    return [a[start:stop] for start, stop in itertools.pairwise(bounds)]


@pytest.fixture
def logits(rng: np.random.Generator) -> np.ndarray:
    x = 3.0 * rng.normal(size=(10, 8))
    x[1, 2] = np.inf  # a slice holding +inf
    x[4] = -np.inf  # a slice with nothing in it
    x[6, 5] = np.nan  # a slice holding NaN
    x[8] = [0.0, -40.0, -45.0, -50.0, -60.0, -70.0, -80.0, -90.0]  # one dominant logit
    return x


def _layers_of(result: Any) -> set[str]:
    return {name.rpartition("-")[0] for name in result.__dask_graph__().layers}


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "logsumexp-keepdims"])
def test_each_chunk_gives_the_eager_bits(
    name: str, logits: np.ndarray, rng: np.random.Generator
) -> None:
    fn = getattr(xpsoftmax, name.partition("-")[0])
    options = {"keepdims": True} if name.endswith("keepdims") else {}
    where = rng.random(logits.shape) < 0.8
    temperature = rng.uniform(0.5, 2.0, size=(10, 1))
    # The mask and the temperatures are chunked otherwise, and follow x's chunks.
    arrays = (
        da.from_array(logits, chunks=(ROW_CHUNKS, 8)),
        da.from_array(where, chunks=(5, 4)),
        da.from_array(temperature, chunks=(2, 1)),
    )
    with dask.config.set(scheduler=_refuse_to_compute):
        lazy = fn(arrays[0], where=arrays[1], temperature=arrays[2], **options)
    got = lazy.compute(scheduler="sync")
    expected = np.concatenate(
        [
            fn(x, where=w, temperature=t, **options)
            for x, w, t in zip(_pieces(logits), _pieces(where), _pieces(temperature), strict=True)
        ]
    )
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)  # NaN where NaN, every bit elsewhere
    if name == "log_softmax":  # and right: SciPy, on the rows it defines alike
        rows = [0, 2, 3, 5, 7, 9]
        scaled = np.where(where, logits / temperature, -np.inf)[rows]
        np.testing.assert_allclose(got[rows], special.log_softmax(scaled, axis=-1), rtol=1e-13)


def test_the_graph_gains_one_layer(logits: np.ndarray) -> None:
    x = da.from_array(logits, chunks=(ROW_CHUNKS, 8))
    for fn in (xpsoftmax.softmax, xpsoftmax.log_softmax, xpsoftmax.logsumexp):
        assert len(_layers_of(fn(x)) - _layers_of(x)) == 1, fn.__name__
    target = da.from_array(np.arange(10) % 8, chunks=(ROW_CHUNKS,))
    loss = xpsoftmax.cross_entropy(x, target, reduction="none")
    assert len(_layers_of(loss) - _layers_of(x) - _layers_of(target)) <= 2  # the task, a reshape


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_cross_entropy_by_chunks_of_samples(reduction: str, rng: np.random.Generator) -> None:
    x = 3.0 * rng.normal(size=(10, 8))
    target = rng.integers(0, 8, size=10)
    target[3] = -100
    weight = rng.uniform(0.5, 2.0, size=8)
    options = {"ignore_index": -100, "label_smoothing": 0.1, "reduction": reduction}
    with dask.config.set(scheduler=_refuse_to_compute):
        lazy = xpsoftmax.cross_entropy(
            da.from_array(x, chunks=(ROW_CHUNKS, 8)),
            da.from_array(target, chunks=4),
            weight=da.from_array(weight, chunks=3),
            **options,
        )
    got = lazy.compute(scheduler="sync")
    if reduction == "none":
        pieces = zip(_pieces(x), _pieces(target), strict=True)
        expected = np.concatenate(
            [xpsoftmax.cross_entropy(a, t, weight=weight, **options) for a, t in pieces]
        )
        np.testing.assert_array_equal(got, expected)
    torch = pytest.importorskip("torch")
    peer = torch.nn.functional.cross_entropy(
        torch.tensor(x),
        torch.tensor(target),
        weight=torch.tensor(weight),
        ignore_index=-100,
        label_smoothing=0.1,
        reduction=reduction,
    )
    np.testing.assert_allclose(got, peer.numpy(), rtol=1e-12)


def test_linear_cross_entropy_by_chunks_of_tokens(rng: np.random.Generator) -> None:
    hidden = rng.normal(size=(4, 5, 6))
    weights = rng.normal(size=(9, 6))
    bias = rng.normal(size=9)
    target = rng.integers(0, 9, size=(4, 5))
    target[1, 2] = -100
    options = {"linear_bias": bias, "softcap": 5.0, "ignore_index": -100, "reduction": "none"}
    with dask.config.set(scheduler=_refuse_to_compute):
        lazy = xpsoftmax.linear_cross_entropy(
            da.from_array(hidden, chunks=(1, 5, 6)),
            da.from_array(weights, chunks=(4, 6)),  # the weights go whole to every task
            da.from_array(target, chunks=(2, 5)),
            **{**options, "linear_bias": da.from_array(bias, chunks=3)},
        )
    got = lazy.compute(scheduler="sync")
    expected = np.stack(
        [
            xpsoftmax.linear_cross_entropy(h, weights, t, **options)
            for h, t in zip(hidden, target, strict=True)
        ]
    )
    np.testing.assert_array_equal(got, expected)
    # And the loss itself: the materialised logits, softcapped, against SciPy's logsumexp.
    logits = 5.0 * np.tanh((hidden @ weights.T + bias) / 5.0)
    loss = (
        special.logsumexp(logits, axis=-1)
        - np.take_along_axis(logits, np.where(target < 0, 0, target)[..., None], axis=-1)[..., 0]
    )
    np.testing.assert_allclose(got, np.where(target < 0, 0.0, loss), rtol=1e-12)


def test_a_slice_across_chunks_takes_the_other_path(logits: np.ndarray) -> None:
    x = da.from_array(logits, chunks=(5, 3))  # classes split over three chunks
    y = xpsoftmax.softmax(x)
    assert len(_layers_of(y) - _layers_of(x)) > 1
    with np.errstate(invalid="ignore"):
        expected = special.softmax(logits, axis=-1)
    finite = np.isfinite(logits).all(axis=-1)
    np.testing.assert_allclose(y.compute()[finite], expected[finite], rtol=1e-13)


# -- slices split over chunks ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("axis", [-1, (1, 2), None])
def test_slices_split_over_chunks(name: str, axis: Any, rng: np.random.Generator) -> None:
    x = 3.0 * rng.normal(size=(6, 5, 8))
    x[1, 2, 3] = x[1, 2, 6] = np.inf  # two +inf share a slice's mass (in two chunks)
    x[2] = -np.inf  # empty slices
    x[3, 4, 5] = np.nan
    x[4, 1] = [0.0, -40.0, -45.0, -50.0, -60.0, -70.0, -80.0, -90.0]  # a dominant logit
    x[5, 0, 7] = 1e308  # and offsets that would overflow when subtracted
    x[5, 0, 1] = -1e308
    where = rng.random(x.shape) < 0.8
    where[4, 1] = True
    temperature = rng.uniform(0.5, 2.0, size=(6, 1, 1))
    fn = getattr(xpsoftmax, name)
    options = {"axis": axis}
    if axis == -1:
        options["temperature"] = da.from_array(temperature, chunks=(4, 1, 1))
        options["where"] = da.from_array(where, chunks=(3, 5, 2))
    with dask.config.set(scheduler=_refuse_to_compute):
        lazy = fn(da.from_array(x, chunks=(2, 2, 3)), **options)
    got = lazy.compute(scheduler="sync")
    eager = {k: (v.compute() if hasattr(v, "compute") else v) for k, v in options.items()}
    expected = fn(x, **eager)
    assert got.shape == expected.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    # Each chunk's shift and the slice's are rounded apart: a few ulps, not the eager bits.
    np.testing.assert_allclose(got, expected, rtol=8 * np.finfo(np.float64).eps, atol=0)
    if name == "log_softmax" and axis == -1:  # the dominant logit keeps its digits
        assert got[4, 1, 0] == pytest.approx(
            -np.exp(-40.0 / eager["temperature"][4, 0, 0]), rel=1e-12
        )


def test_split_slices_read_each_chunk_in_two_tasks(rng: np.random.Generator) -> None:
    """Two full-size layers, a chunk's statistics and its result, special values or not; the
    rest of the graph holds a few numbers per slice and chunk."""
    x = da.from_array(3.0 * rng.normal(size=(12, 40)), chunks=(3, 10))
    for fn in (xpsoftmax.softmax, xpsoftmax.log_softmax):
        graph = fn(x).__dask_graph__()
        full_size = [
            name
            for name, layer in graph.layers.items()
            if len(layer) == x.npartitions and name not in x.__dask_graph__().layers
        ]
        assert len(full_size) == 2, full_size
