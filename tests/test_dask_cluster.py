"""Dask: the functions stay lazy, combine chunks along the softmax axis, and scale out.

* Laziness: every public function is called under a scheduler that fails the test if anything
  asks it to compute, with the softmax axis split over several chunks and with ``where`` and
  per-slice temperatures given as Dask arrays. Only afterwards is the result computed and
  compared with SciPy's own functions.
* Graph size: the task graph of a softmax over an n-chunk axis is a small constant multiple of
  the graph of the plain pair of reductions every softmax needs (a max, then a sum of
  exponentials), whatever n.
* A real `distributed.LocalCluster` with two worker processes, each limited to 400 MB, runs
  the same calls, and pushes 1.6 GB of logits (generated inside the graph, so they never sit
  in one place) through a softmax with no worker killed for memory.
"""

from __future__ import annotations

import os
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from conftest import JACOBIANS, PRODUCTS, two_workers
from scipy import special

import xpsoftmax

ROWS, COLUMNS, COLUMN_CHUNK = 6, 40, 7  # 6 chunks along the softmax axis, the last one short


def _refuse_to_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the library asked Dask to compute")


def _lazy_inputs(rng: np.random.Generator) -> dict[str, np.ndarray]:
    x = rng.normal(scale=4.0, size=(ROWS, COLUMNS))
    x[0, 3] = -np.inf  # special values must be handled without looking at them
    where = rng.random((ROWS, COLUMNS)) < 0.7
    where[:, 0] = True  # every slice keeps an entry, so SciPy's reference is defined
    temperature = rng.uniform(0.5, 3.0, size=(ROWS, 1))
    target = rng.integers(0, COLUMNS, size=ROWS)
    return {"x": x, "where": where, "temperature": temperature, "target": target}


def _as_dask(a: np.ndarray) -> da.Array:
    return da.from_array(a, chunks=(2, COLUMN_CHUNK) if a.ndim == 2 and a.shape[1] > 1 else 2)


def _scipy_log_softmax(x: np.ndarray, where: np.ndarray, t: np.ndarray) -> np.ndarray:
    """SciPy's log_softmax with excluded entries at -inf, which is what `where` means."""
    with np.errstate(invalid="ignore"):
        return special.log_softmax(np.where(where, x / t, -np.inf), axis=-1)


REFERENCES: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {
    "softmax": lambda a: np.exp(_scipy_log_softmax(a["x"], a["where"], a["temperature"])),
    "log_softmax": lambda a: _scipy_log_softmax(a["x"], a["where"], a["temperature"]),
    "logsumexp": lambda a: (
        a["temperature"][:, 0]
        * special.logsumexp(np.where(a["where"], a["x"] / a["temperature"], -np.inf), axis=-1)
    ),
    "cross_entropy": lambda a: (
        -np.take_along_axis(
            _scipy_log_softmax(a["x"], a["where"], a["temperature"]), a["target"][:, None], axis=-1
        )[:, 0]
    ),
}


def _call(name: str, arrays: dict[str, Any]) -> Any:
    fn = getattr(xpsoftmax, name)
    options = {"temperature": arrays["temperature"], "where": arrays["where"]}
    if name == "cross_entropy":
        return fn(arrays["x"], arrays["target"], reduction="none", **options)
    return fn(arrays["x"], **options)


def _assert_matches(result: np.ndarray, expected: np.ndarray) -> None:
    # Entries at -inf must agree exactly; the rest to float64 rounding of a few operations.
    np.testing.assert_array_equal(np.isneginf(result), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(result[finite], expected[finite], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_stays_lazy_with_axis_mask_and_temperature_as_dask(name: str) -> None:
    host = _lazy_inputs(np.random.default_rng(7))
    arrays = {k: _as_dask(v) for k, v in host.items()}
    assert arrays["x"].numblocks[1] == 6
    with dask.config.set(scheduler=_refuse_to_compute):
        result = _call(name, arrays)
    assert isinstance(result, da.Array)
    _assert_matches(result.compute(scheduler="sync"), REFERENCES[name](host))


@pytest.mark.parametrize(
    "name",
    [*JACOBIANS, *PRODUCTS],
)
def test_derivatives_stay_lazy(name: str) -> None:
    rng = np.random.default_rng(11)
    x = _as_dask(rng.normal(size=(ROWS, COLUMNS)))
    args = (x,) if "jacobian" in name else (x, _as_dask(rng.normal(size=(ROWS, COLUMNS))))
    with dask.config.set(scheduler=_refuse_to_compute):
        result = getattr(xpsoftmax, name)(*args, temperature=2.0)
    assert isinstance(result, da.Array)
    # The same function on the computed inputs: Dask's result must not depend on the chunking.
    eager = getattr(xpsoftmax, name)(*(a.compute(scheduler="sync") for a in args), temperature=2.0)
    np.testing.assert_allclose(result.compute(scheduler="sync"), eager, rtol=1e-13, atol=1e-16)


def _task_count(a: da.Array) -> int:
    return len(dict(a.__dask_graph__()))


#: Tasks as built, in units of the max-then-sum pair: the measured figures (see below) and a
#: little room. What runs, after ``dask.optimize``, is held to 2.5 for every function.
BUILT_BOUND = {"softmax": 0.75, "log_softmax": 0.75, "logsumexp": 0.5, "cross_entropy": 4.25}


@pytest.mark.parametrize("n_chunks", [8, 64])
@pytest.mark.parametrize("name", list(BUILT_BOUND))
def test_graph_is_a_small_multiple_of_max_then_sum(name: str, n_chunks: int) -> None:
    """Tasks grow like the plain two-reduction softmax: no per-chunk-pair or quadratic terms.

    Measured, as built / as optimised (what `compute` runs), in units of the plain pair as
    built / optimised: softmax and log_softmax 0.54-0.63 / 0.84-0.97 and logsumexp 0.36-0.43 /
    0.56-0.60 (three tasks per chunk: its statistics, a slice's combination, its result; see
    docs: Scale), cross_entropy 3.5-3.9 / 2.6-2.8 (a composition of the standard's operations,
    whose elementwise layers Dask's optimisation fuses).
    """
    x = da.random.default_rng(0).standard_normal((16, 10 * n_chunks), chunks=(16, 10))
    maximum = da.max(x, axis=-1, keepdims=True)
    plain_pair = da.sum(da.exp(x - maximum), axis=-1, keepdims=True)
    if name == "cross_entropy":
        target = da.zeros(16, dtype=np.int64, chunks=16)
        result = xpsoftmax.cross_entropy(x, target, reduction="none")
    else:
        result = getattr(xpsoftmax, name)(x)
    built = _task_count(result) / _task_count(plain_pair)
    assert built <= BUILT_BOUND[name], f"{_task_count(result)} tasks, {built:.2f}x the pair"
    (optimised,) = dask.optimize(result)
    assert _task_count(optimised) <= 2.5 * _task_count(plain_pair)


# -- a real cluster ------------------------------------------------------------------------------


@pytest.fixture  # (per test: beside a live client, Dask 2024 warns of the others' sync computes)
def client() -> Iterator[Any]:
    """Two worker processes with one thread and 400 MB each (`conftest.two_workers`)."""
    with two_workers(memory_limit="400MB") as cluster_client:
        yield cluster_client


def _worker_pids(client: Any) -> dict[str, int]:
    return client.run(os.getpid)


def _proc_status(client: Any) -> dict[str, str]:
    return client.run(pathlib.Path("/proc/self/status").read_text)  # type: ignore[no-any-return]


def _peak_resident_bytes(status: str) -> int:
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024  # reported in kB


def _removed_workers(client: Any) -> list[Any]:
    events = client.get_events("all")
    return [e for _, e in events if isinstance(e, dict) and e.get("action") == "remove-worker"]


@pytest.mark.slow
def test_on_a_local_cluster_of_worker_processes(client: Any) -> None:
    host = _lazy_inputs(np.random.default_rng(3))
    arrays = {k: _as_dask(v) for k, v in host.items()}
    with dask.config.set(scheduler=_refuse_to_compute):
        results = {name: _call(name, arrays) for name in REFERENCES}
    computed = client.gather(client.compute(list(results.values())))
    for name, result in zip(results, computed, strict=True):
        _assert_matches(np.asarray(result), REFERENCES[name](host))
    assert len(_worker_pids(client)) == 2


@pytest.mark.slow
def test_out_of_core_through_two_workers_of_400_mb(client: Any) -> None:
    """1.6 GB of float64 logits, 8 MB chunks, ten of them along the softmax axis."""
    pids = _worker_pids(client)
    x = da.random.default_rng(2026).standard_normal((20_000, 10_000), chunks=(1_000, 1_000))
    assert x.nbytes == 1.6e9
    assert x.numblocks == (20, 10)
    with dask.config.set(scheduler=_refuse_to_compute):
        row_sums = da.sum(xpsoftmax.softmax(4.0 * x, axis=-1), axis=-1)
    worst = client.compute(da.max(da.abs(row_sums - 1.0))).result()
    assert worst < 1e-12
    assert _worker_pids(client) == pids, "a worker was restarted"
    assert not _removed_workers(client)
    if sys.platform.startswith("linux"):
        # Each worker's high-water mark of resident memory (Linux keeps it per process image,
        # unlike ru_maxrss, which a spawned process inherits from its parent). Measured:
        # 220-230 MB with these 8 MB chunks (about 300 MB with 16 MB chunks).
        peaks = {a: _peak_resident_bytes(s) for a, s in _proc_status(client).items()}
        assert all(peak < 400e6 for peak in peaks.values()), peaks
