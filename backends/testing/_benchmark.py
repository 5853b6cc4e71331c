"""`benchmark`: a user's function timed on every variant beside a peer, as our Performance table.

The method is the Performance page's: each round times the function, then the peer, on the same
input (interleaved, so that a busy machine slows both alike), each call waited for
(`~xpsoftmax.backends.Variant.synchronize`: JAX's asynchronous dispatch, Dask's graph, a GPU's
queue), and the best round of each is kept. Compilation and first-call costs are paid before the
rounds. The ratio is the function's time over the peer's: below 1, the function is faster.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import array_api_compat
from xpsoftmax.backends import ignoring, is_traced

from ._inputs import Inputs
from ._matrix import select
from ._results import flatten
from ._running import Policy, prepared

if TYPE_CHECKING:
    from xpsoftmax.backends import Variant

#: Seconds each timed batch of calls should take (the number of calls per batch follows).
_BATCH_S = 0.02


@dataclasses.dataclass(frozen=True)
class Timing:
    """One row: best seconds per call of the function and of the peer on one variant."""

    variant: str
    seconds: float
    peer_seconds: float | None

    @property
    def ratio(self) -> float | None:
        """The function's time over the peer's (below 1: faster), None without a peer."""
        return None if self.peer_seconds is None else self.seconds / self.peer_seconds


@dataclasses.dataclass(frozen=True)
class BenchmarkTable:
    """The rows of a `benchmark`, printable as text (``str``) or as reStructuredText (`to_rst`)."""

    function: str
    peer: str
    rows: tuple[Timing, ...]

    def _cells(self) -> list[list[str]]:
        header = ["case", self.function, self.peer, "ratio"]
        body = [
            [
                f"{row.variant} {self.function} / {self.peer}",
                _format_seconds(row.seconds),
                "-" if row.peer_seconds is None else _format_seconds(row.peer_seconds),
                "-" if row.ratio is None else f"{row.ratio:.2f}",
            ]
            for row in self.rows
        ]
        return [header, *body]

    def __str__(self) -> str:
        cells = self._cells()
        widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(line.rstrip() for line in lines)

    def to_rst(self) -> str:
        """The table as a reStructuredText ``list-table``, as on our Performance page."""
        lines = [".. list-table::", "   :header-rows: 1", ""]
        for row in self._cells():
            lines.append(f"   * - {row[0]}")
            lines.extend(f"     - {cell}" for cell in row[1:])
        return "\n".join(lines) + "\n"


def benchmark(
    fn: Callable[..., Any],
    /,
    *args: Any,
    peer: Callable[..., Any] | Mapping[str, Callable[..., Any]],
    peer_name: str = "peer",
    variants: Iterable[str | Variant] | None = None,
    rounds: int = 10,
    **kwargs: Any,
) -> BenchmarkTable:
    """Time ``fn(*args, **kwargs)`` on every variant beside `peer`, interleaved, best of `rounds`.

    Parameters
    ----------
    fn : callable
        The function to time, called as `check_function` calls it (compiled on compiled
        variants, lazily on Dask, where the timing includes computing the result).
    *args, **kwargs
        Its arguments; NumPy arrays become each variant's arrays.
    peer : callable or mapping of str to callable
        What to compare with, called with the same arguments on the same variant: one callable,
        or one per backend or variant name (``{"numpy": ..., "torch": ...}``); a variant without
        a peer is timed alone.
    peer_name : str, default "peer"
        The peer's column heading, e.g. "SciPy" or "framework".
    variants : iterable of str or Variant, optional
        The variants to time, by name; all that can run here by default.
    rounds : int, default 10
        Interleaved rounds; the best of each side is kept.

    Returns
    -------
    BenchmarkTable
        ``str(table)`` is a text table, ``table.to_rst()`` the Performance page's kind.

    Examples
    --------
    >>> import numpy as np
    >>> from xpsoftmax import testing
    >>> table = testing.benchmark(np.negative, np.ones(3), peer=np.positive, variants=["numpy"])
    >>> [row.variant for row in table.rows]
    ['numpy']
    """
    inputs = Inputs(fn, args, kwargs)
    name = getattr(fn, "__name__", "function")
    rows = []
    for v in select(variants):
        if not inputs.fit(v):
            continue
        call_args, call_kwargs = inputs.on(v)
        chosen = _peer_for(v, peer)
        timed = [fn] if chosen is None else [fn, chosen]
        elements = sum(a.size for a in inputs.arrays.values())
        # Quiet once around it all: a context entered per call would be timed with it.
        with v.timing(elements), v.backend.quiet(), ignoring(v.backend.internal_warnings):
            sides = [_timed(v, f, call_args, call_kwargs, inputs) for f in timed]
            best = _interleaved(sides, rounds)
        rows.append(Timing(v.name, best[0], best[1] if chosen is not None else None))
    return BenchmarkTable(name, peer_name, tuple(rows))


def _peer_for(
    v: Variant, peer: Callable[..., Any] | Mapping[str, Callable[..., Any]]
) -> Callable[..., Any] | None:
    if not isinstance(peer, Mapping):
        return peer
    return peer.get(v.name, peer.get(v.backend.name))


def _timed(
    v: Variant, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], inputs: Inputs
) -> Callable[[], Any]:
    call = prepared(v, fn, args, kwargs, Policy(), inputs)

    def once() -> Any:
        return _completed(v, call())

    once()  # compiles on a compiled variant, warms caches elsewhere
    return once


def _completed(v: Variant, result: Any) -> Any:
    """`result` once computed: each array of `v`'s library in it waited for (a Python number,
    or a NumPy array the function made, is ready already)."""
    for _, leaf in flatten(result):
        if is_traced(leaf) and array_api_compat.array_namespace(leaf) is v.xp:
            v.synchronize(leaf)
    return result


def _interleaved(calls: list[Callable[[], Any]], rounds: int) -> list[float]:
    """Best seconds per call of each of `calls`, timed in alternating rounds."""
    counts = []
    for call in calls:
        start = time.perf_counter()
        call()
        counts.append(max(1, int(_BATCH_S / max(time.perf_counter() - start, 1e-7))))
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, (call, count) in enumerate(zip(calls, counts, strict=True)):
            start = time.perf_counter()
            for _ in range(count):
                call()
            best[i] = min(best[i], (time.perf_counter() - start) / count)
    return best


def _format_seconds(seconds: float) -> str:
    """As on the Performance page: "26.6 us", "21.870 ms", "1.204 s"."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.3f} s"
