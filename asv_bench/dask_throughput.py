"""Dask throughput of xpsoftmax.softmax, in GB of logits per second, on 1 and 2 workers.

A standalone script (not an asv benchmark: a cluster takes seconds to start and the figures
depend on the machine's cores, so asv's many short repeats do not fit it). For each worker
count it starts a `distributed.LocalCluster` of single-threaded worker processes, puts random
float64 logits into the workers' memory (``persist``) in two layouts, and times each beside its
own floor:

* **one chunk along the softmax axis** (rows split, classes whole: the usual layout), where
  ``softmax`` runs on each chunk as one task, beside **map_blocks**: a softmax written by hand in
  NumPy (``exp(x - max) / sum``) mapped over the same chunks, what one task per chunk can hope for;
* **4 chunks along the softmax axis** (``--axis-chunks``), where ``softmax`` combines the chunks'
  statistics, beside **max+sum**: the bare pair of reductions any chunked softmax needs (a max,
  then a sum of ``exp(x - max)``).

Each case computes the row sums of its result (``da.sum(..., axis=-1)``), so that the whole result
is produced but only a small array comes back. The table gives each case's GB/s and its ratio to
the floor beside it.

Run it on this machine::

    python asv_bench/dask_throughput.py                 # 1 and 2 workers, 0.8 GB
    python asv_bench/dask_throughput.py --gb 0.2 --workers 1

On an existing cluster, give its scheduler's address: the script then starts nothing and
measures with whatever workers that cluster has (start them with ``--nthreads 1`` per core, or
as many threads as cores; size ``--gb`` to fit the workers' memory)::

    dask scheduler                                     # on the scheduler host, port 8786
    dask worker tcp://scheduler:8786 --nthreads 1      # on each worker host, once per core
    python asv_bench/dask_throughput.py --scheduler tcp://scheduler:8786 --gb 20

Every worker needs xpsoftmax and array-api-compat installed (the tasks call them).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=0.8, help="GB of float64 logits (0.8)")
    parser.add_argument("--columns", type=int, default=4_000, help="softmax axis length (4000)")
    parser.add_argument("--chunk-mb", type=float, default=16.0, help="MB per chunk (16)")
    parser.add_argument(
        "--axis-chunks", type=int, default=4, help="chunks along the softmax axis (4)"
    )
    parser.add_argument(
        "--layouts", default="one,several", help="one and/or several chunks along the axis"
    )
    parser.add_argument(
        "--workers", default="1,2", help="LocalCluster worker counts to measure (1,2)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per cell, best kept (3)")
    parser.add_argument(
        "--scheduler", default=None, help="address of an existing cluster (tcp://host:8786)"
    )
    return parser.parse_args()


def _logits(args: argparse.Namespace, axis_chunks: int) -> Any:
    """Random logits with `axis_chunks` chunks along the softmax axis and ~``--chunk-mb``."""
    import dask.array as da

    rows = max(1, int(args.gb * 1e9 / 8 / args.columns))
    column_chunk = -(-args.columns // axis_chunks)
    row_chunk = max(1, int(args.chunk_mb * 1e6 / 8 / column_chunk))
    generator = da.random.default_rng(0)
    return 4.0 * generator.standard_normal((rows, args.columns), chunks=(row_chunk, column_chunk))


def _softmax_rows(x: Any) -> Any:
    import dask.array as da

    import xpsoftmax

    return da.sum(xpsoftmax.softmax(x, axis=-1), axis=-1)


def _numpy_softmax(chunk: Any) -> Any:
    import numpy as np

    e = np.exp(chunk - np.max(chunk, axis=-1, keepdims=True))
    e /= np.sum(e, axis=-1, keepdims=True)
    return e


def _map_blocks_softmax(x: Any) -> Any:
    import dask.array as da

    return da.sum(x.map_blocks(_numpy_softmax, dtype=x.dtype), axis=-1)


def _max_then_sum(x: Any) -> Any:
    import dask.array as da

    maximum = da.max(x, axis=-1, keepdims=True)
    return da.sum(da.exp(x - maximum), axis=-1)


#: Per layout, xpsoftmax's case and the floor it is measured against.
LAYOUTS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "one": {"softmax": _softmax_rows, "map_blocks": _map_blocks_softmax},
    "several": {"softmax": _softmax_rows, "max+sum": _max_then_sum},
}


def _measure(client: Any, args: argparse.Namespace, label: str) -> list[dict[str, Any]]:
    """Time every layout's two cases on `client`'s cluster, interleaved run by run (so both
    see the same moment of the machine); returns one row per case."""
    from distributed import wait

    n_workers = len(client.scheduler_info()["workers"])
    rows = []
    for layout in args.layouts.split(","):
        axis_chunks = 1 if layout == "one" else args.axis_chunks
        print(f"[{label}] {n_workers} worker(s), {layout} chunk(s) along the axis: "
              f"generating {args.gb:g} GB of logits", flush=True)  # fmt: skip
        x = client.persist(_logits(args, axis_chunks))
        wait(x)
        cases = LAYOUTS[layout]
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        for build in cases.values():
            client.compute(build(x[: x.chunks[0][0]])).result()  # warm-up: imports, first calls
        for i in range(args.repeat):
            for name, build in cases.items():
                start = time.perf_counter()
                client.compute(build(x)).result()
                seconds[name].append(time.perf_counter() - start)
                print(f"[{label}]   {name}: run {i + 1}/{args.repeat}, "
                      f"{seconds[name][-1]:.2f} s", flush=True)  # fmt: skip
        floor = min(seconds[list(cases)[1]])
        for name in cases:
            best = min(seconds[name])
            rows.append(
                {
                    "cluster": label,
                    "workers": n_workers,
                    "case": name,
                    "gb": x.nbytes / 1e9,
                    "chunks": "x".join(str(n) for n in x.numblocks),
                    "best_s": best,
                    "median_s": statistics.median(seconds[name]),
                    "gb_per_s": x.nbytes / 1e9 / best,
                    "vs_floor": floor / best,
                }
            )
        del x
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("cluster", "workers", "case", "GB", "chunks", "best s", "median s", "GB/s", "/floor")
    lines = [
        (
            r["cluster"],
            str(r["workers"]),
            r["case"],
            f"{r['gb']:.2f}",
            r["chunks"],
            f"{r['best_s']:.2f}",
            f"{r['median_s']:.2f}",
            f"{r['gb_per_s']:.2f}",
            f"{r['vs_floor']:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def main() -> None:
    from distributed import Client, LocalCluster

    args = _parse()
    rows: list[dict[str, Any]] = []
    if args.scheduler:
        with Client(args.scheduler) as client:
            rows += _measure(client, args, args.scheduler)
    else:
        for n_workers in (int(n) for n in args.workers.split(",")):
            print(f"starting a LocalCluster of {n_workers} worker process(es)", flush=True)
            with (
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                ) as cluster,
                Client(cluster) as client,
            ):
                rows += _measure(client, args, "local")
    print()
    print(_table(rows))


if __name__ == "__main__":
    main()
