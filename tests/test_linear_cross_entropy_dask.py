"""linear_cross_entropy_vjp on Dask: lazy, chunked by tokens, and through a real LocalCluster.

* Laziness: with ``hidden`` split by tokens over several chunks and ``linear_weight`` one
  chunk, the loss and the gradients are built under a scheduler that fails the test if anything
  asks it to compute, and only then computed and compared with the materialised formula in
  float64 (SciPy's logsumexp and softmax on the whole logits).
* A `distributed.LocalCluster` of two worker processes limited to 300 MB each runs a head
  whose logits take 604 MB in float32, twice a worker's memory: ours
  completes with no worker restarted and each worker's resident peak under its limit; the loss
  and gradients match PyTorch's ``F.cross_entropy`` on the materialised logits, taken a block
  of 2048 tokens at a time in this process.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

import xpsoftmax


def _refuse_to_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the library asked Dask to compute")


def _materialised(h: np.ndarray, w: np.ndarray, y: np.ndarray) -> tuple[Any, ...]:
    """Mean cross-entropy of h @ w.T and its gradients, from the whole logits."""
    # (SciPy imported here: the workers import this module for its functions.)
    from scipy import special

    logits = h @ w.T
    rows = np.arange(len(y))
    loss = np.mean(special.logsumexp(logits, axis=-1) - logits[rows, y])
    d_logits = special.softmax(logits, axis=-1)
    d_logits[rows, y] -= 1.0
    d_logits /= len(y)
    return loss, d_logits @ w, d_logits.T @ h


def _head(tokens: int, d: int, v: int, dtype: str, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((tokens, d)).astype(dtype)
    w = (rng.standard_normal((v, d)) / np.sqrt(d)).astype(dtype)
    return h, w, rng.integers(0, v, size=tokens)


def _lazy_vjp(h: Any, w: Any, y: Any, **options: Any) -> tuple[Any, ...]:
    with dask.config.set(scheduler=_refuse_to_compute):
        loss, d_hidden, d_weight, d_bias = xpsoftmax.linear_cross_entropy_vjp(
            h, w, y, 1.0, **options
        )
    assert d_bias is None
    for result in (loss, d_hidden, d_weight):
        assert isinstance(result, da.Array)
    return loss, d_hidden, d_weight


@pytest.mark.parametrize("chunk_size", [None, 7])
def test_vjp_stays_lazy_and_matches_the_materialised_formula(chunk_size: int | None) -> None:
    h, w, y = _head(60, 8, 50, "float64")
    arrays = da.from_array(h, chunks=(16, 8)), da.from_array(w), da.from_array(y, chunks=16)
    assert arrays[0].numblocks == (4, 1)
    results = _lazy_vjp(*arrays, chunk_size=chunk_size)
    computed = dask.compute(*results, scheduler="sync")
    for got, expected in zip(computed, _materialised(h, w, y), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-16)


# -- a real cluster ------------------------------------------------------------------------------

WORKER_LIMIT = 300e6


@pytest.fixture  # (per test: beside a live client, Dask 2024 warns of the others' sync computes)
def client() -> Iterator[Any]:
    """Two worker processes with one thread and 300 MB each; the dashboard on a free port."""
    from conftest import two_workers  # (here: the workers import this module, not conftest's)

    with two_workers(memory_limit=WORKER_LIMIT) as cluster_client:
        yield cluster_client


def _peak_resident_bytes(status: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024  # reported in kB


def _torch_blockwise(h: np.ndarray, w: np.ndarray, y: np.ndarray, rows: int) -> tuple[Any, ...]:
    """PyTorch's F.cross_entropy on the materialised logits of `rows` tokens at a time."""
    import torch
    import torch.nn.functional as F

    weight = torch.tensor(w, requires_grad=True)
    total, d_hidden = 0.0, []
    for start in range(0, len(y), rows):
        block = torch.tensor(h[start : start + rows], requires_grad=True)
        target = torch.tensor(y[start : start + rows])
        loss = F.cross_entropy(block @ weight.T, target, reduction="sum") / len(y)
        loss.backward()
        total += float(loss.detach())
        d_hidden.append(block.grad.numpy())
    return np.float32(total), np.concatenate(d_hidden), weight.grad.numpy()


@pytest.mark.slow
def test_on_a_local_cluster(client: Any) -> None:
    h, w, y = _head(60, 8, 50, "float64")
    arrays = da.from_array(h, chunks=(16, 8)), da.from_array(w), da.from_array(y, chunks=16)
    results = _lazy_vjp(*arrays)
    computed = client.gather(client.compute(list(results)))
    for got, expected in zip(computed, _materialised(h, w, y), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-16)


@pytest.mark.slow
def test_logits_larger_than_the_workers_memory(client: Any) -> None:
    """16,384 tokens x 9,216 classes: 604 MB of float32 logits, never built: each worker's
    share alone would be more than its memory."""
    tokens, d, v = 16384, 16, 9216
    assert tokens * v * 4 > 2 * WORKER_LIMIT
    h, w, y = _head(tokens, d, v, "float32", seed=1)
    pids = client.run(os.getpid)
    # (Chunks of 1,024 tokens: a task's blocks and their sums leave room in a worker's budget
    # beside the worker process's own memory.)
    arrays = da.from_array(h, chunks=(1024, d)), da.from_array(w), da.from_array(y, chunks=1024)
    results = _lazy_vjp(*arrays, chunk_size=256)
    loss, d_hidden, d_weight = client.gather(client.compute(list(results)))
    assert client.run(os.getpid) == pids, "a worker was restarted"
    events = client.get_events("all")
    removed = [e for _, e in events if isinstance(e, dict) and e.get("action") == "remove-worker"]
    assert not removed
    if sys.platform.startswith("linux"):
        statuses = client.run(pathlib.Path("/proc/self/status").read_text)
        peaks = {a: _peak_resident_bytes(s) for a, s in statuses.items()}
        assert all(peak < WORKER_LIMIT for peak in peaks.values()), peaks
    expected = _torch_blockwise(h, w, y, rows=2048)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-5)
    for got, theirs in zip((d_hidden, d_weight), expected[1:], strict=True):
        np.testing.assert_allclose(got, theirs, rtol=1e-3, atol=1e-4 * np.max(np.abs(theirs)))


@pytest.mark.parametrize("g", [np.float32(0.5), np.array(0.5), 0.5])
def test_numpy_scalar_cotangent(g: Any) -> None:
    """A NumPy scalar (or 0-d array) g beside Dask inputs is taken as the number it holds."""
    h, w, y = _head(20, 4, 9, "float64", seed=2)
    arrays = da.from_array(h, chunks=(8, 4)), da.from_array(w), da.from_array(y, chunks=8)
    with dask.config.set(scheduler=_refuse_to_compute):
        results = xpsoftmax.linear_cross_entropy_vjp(*arrays, g)[:3]
    computed = dask.compute(*results, scheduler="sync")
    expected = _materialised(h, w, y)
    np.testing.assert_allclose(computed[0], expected[0], rtol=1e-12)
    for got, full in zip(computed[1:], expected[1:], strict=True):
        np.testing.assert_allclose(got, 0.5 * full, rtol=1e-12, atol=1e-16)
