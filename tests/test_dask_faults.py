"""Dask on a real `distributed.LocalCluster`: a worker killed mid-computation, and workers
that spill to disk, lose nothing.

The logits are made inside the graph, each chunk taking a moment, so that the computation is
still under way when one worker process is killed (SIGKILL, after the first chunks are done):
the scheduler runs its tasks again elsewhere, and the results still match the eager ones,
computed here from the same chunks. Every wait has a timeout: nothing may hang.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

import xpsoftmax

distributed = pytest.importorskip("distributed")

ROWS, CLASSES, ROW_CHUNK = 2400, 500, 300  # 8 chunks of rows, the classes whole
TIMEOUT = 180  # seconds, for any result


def _logit_chunk(block_info: Any = None) -> np.ndarray:
    """One chunk of logits, made from its position, slowly (a tenth of a second)."""
    (start, stop), (first, last) = block_info[None]["array-location"]
    time.sleep(0.1)
    rng = np.random.default_rng(start * 7919 + first)
    return 4.0 * rng.standard_normal((stop - start, last - first))


def _logits(columns_per_chunk: int = CLASSES, rows: int = ROWS) -> Any:
    return da.map_blocks(
        _logit_chunk,
        dtype=np.float64,
        chunks=(
            (ROW_CHUNK,) * (rows // ROW_CHUNK),
            (columns_per_chunk,) * (CLASSES // columns_per_chunk),
        ),
    )


@pytest.fixture
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def _done_tasks(client: Any) -> int:
    """How many tasks hold a result now (the chunks' tasks fuse into one another)."""

    def count(dask_scheduler: Any) -> int:
        return sum(1 for ts in dask_scheduler.tasks.values() if ts.state == "memory")

    return int(client.run_on_scheduler(count))


def _kill_a_worker_midway(client: Any, future: Any) -> None:
    """SIGKILL one worker process once the first chunks of logits exist, before the end."""
    deadline = time.monotonic() + TIMEOUT
    while _done_tasks(client) < 2:
        assert time.monotonic() < deadline, "the computation did not start"
        time.sleep(0.02)
    assert not future.done(), "the computation ended before a worker could be killed"
    # (A worker that its nanny is restarting for memory does not answer: the others do.)
    pids: dict[str, int] = {}
    while not pids:
        assert time.monotonic() < deadline, "no worker answered"
        answers = client.run(os.getpid, on_error="return")
        pids = {address: pid for address, pid in answers.items() if isinstance(pid, int)}
    victim = min(pids)
    os.kill(pids[victim], signal.SIGKILL)
    removed = time.monotonic() + TIMEOUT
    while victim in client.scheduler_info()["workers"] and time.monotonic() < removed:
        time.sleep(0.05)


def _eager_logits(x: Any) -> np.ndarray:
    return x.compute(scheduler="sync")


@pytest.mark.slow
@pytest.mark.parametrize("columns_per_chunk", [CLASSES, CLASSES // 5])
def test_softmax_survives_a_killed_worker(cluster: Any, columns_per_chunk: int) -> None:
    x = _logits(columns_per_chunk)
    with distributed.Client(cluster) as client:
        future = client.compute(xpsoftmax.softmax(x))
        _kill_a_worker_midway(client, future)
        got = future.result(timeout=TIMEOUT)
    expected = xpsoftmax.softmax(_eager_logits(x))
    # Whole slices give the eager bits; split ones round each chunk's shift apart from the
    # slice's, an error that grows with |x - max| (up to ~30 here), as the eager one does.
    ulps = 1 if columns_per_chunk == CLASSES else 64
    np.testing.assert_allclose(got, expected, rtol=ulps * np.finfo(np.float64).eps, atol=0)


@pytest.mark.slow
def test_cross_entropy_survives_a_killed_worker(cluster: Any) -> None:
    x = _logits()
    target = da.from_array(np.arange(ROWS) % CLASSES, chunks=ROW_CHUNK)
    with distributed.Client(cluster) as client:
        future = client.compute(xpsoftmax.cross_entropy(x, target, label_smoothing=0.1))
        _kill_a_worker_midway(client, future)
        got = future.result(timeout=TIMEOUT)
    import torch

    peer = torch.nn.functional.cross_entropy(
        torch.tensor(_eager_logits(x)), torch.tensor(target.compute()), label_smoothing=0.1
    )
    np.testing.assert_allclose(got, float(peer), rtol=1e-12)


def _hidden_chunk(d: int, block_info: Any = None) -> np.ndarray:
    """One chunk of hidden states, made from its position, slowly (a tenth of a second)."""
    (start, stop), _ = block_info[None]["array-location"]
    time.sleep(0.1)
    return np.random.default_rng(start).standard_normal((stop - start, d)).astype(np.float32)


@pytest.mark.slow
def test_linear_cross_entropy_gradients_survive_a_killed_worker() -> None:
    """8,192 tokens x 16,384 classes: 537 MB of float32 logits, never built, on workers of
    400 MB each (about 290 MB at their peak), one of which is killed while the gradients are
    computed."""
    tokens, d, v, limit = 8192, 16, 16384, 400e6
    assert tokens * v * 4 > limit
    hidden = da.map_blocks(
        _hidden_chunk, d, dtype=np.float32, chunks=((1024,) * (tokens // 1024), (d,))
    )
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((v, d)).astype(np.float32)
    target = rng.integers(0, v, size=tokens)
    results = xpsoftmax.linear_cross_entropy_vjp(
        hidden, da.from_array(weight), da.from_array(target, chunks=1024), 1.0, chunk_size=256
    )[:3]
    from conftest import two_workers  # (here: the workers import this module, not conftest's)

    with two_workers(memory_limit=limit) as client:
        futures = client.compute(list(results))
        _kill_a_worker_midway(client, futures[-1])
        loss, d_hidden, d_weight = client.gather(futures)
    import torch

    h = torch.tensor(hidden.compute(scheduler="sync"), requires_grad=True)
    w = torch.tensor(weight, requires_grad=True)
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, tokens, 512):  # PyTorch's loss on the logits, 512 tokens at a time
        block = h[start : start + 512] @ w.T
        part = torch.nn.functional.cross_entropy(
            block, torch.tensor(target[start : start + 512]), reduction="sum"
        )
        (part / tokens).backward()
        total += part.detach().double()
    np.testing.assert_allclose(loss, float(total) / tokens, rtol=1e-5)
    for got, theirs in ((d_hidden, h.grad.numpy()), (d_weight, w.grad.numpy())):
        np.testing.assert_allclose(got, theirs, rtol=1e-3, atol=1e-4 * np.max(np.abs(theirs)))


@pytest.mark.slow
def test_right_when_the_workers_spill_to_disk(tmp_path: Any) -> None:
    """Workers that keep a few MB in memory and spill the rest of 77 MB of logits."""
    spill_early = {
        "distributed.worker.memory.target": 0.02,
        "distributed.worker.memory.spill": 0.03,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
    }
    rows = 32 * ROW_CHUNK
    target = np.random.default_rng(5).integers(0, CLASSES, size=rows)
    from conftest import two_workers  # (here: the workers import this module, not conftest's)

    # The same chunks, made here before the cluster starts: Dask 2024 warns of a synchronous
    # compute beside an active client.
    layouts = {
        columns: _eager_logits(_logits(columns, rows)) for columns in (CLASSES, CLASSES // 5)
    }
    with (
        dask.config.set(spill_early),
        two_workers(memory_limit=400e6, local_directory=str(tmp_path)) as client,
    ):
        for columns, logits in layouts.items():  # whole slices, and slices split
            x = client.persist(_logits(columns, rows))
            distributed.wait(x, timeout=TIMEOUT)
            spilled = client.run(lambda dask_worker: len(dask_worker.data.slow))
            assert sum(spilled.values()) > 0, "nothing was spilled"
            row_sums = client.compute(da.sum(xpsoftmax.log_softmax(x), axis=-1))
            y = da.from_array(target, chunks=ROW_CHUNK)
            loss = client.compute(xpsoftmax.cross_entropy(x, y))
            got_rows, got_loss = row_sums.result(timeout=TIMEOUT), loss.result(timeout=TIMEOUT)
            np.testing.assert_allclose(got_rows, np.sum(xpsoftmax.log_softmax(logits), axis=-1))
            np.testing.assert_allclose(
                got_loss, xpsoftmax.cross_entropy(logits, target), rtol=1e-12
            )
