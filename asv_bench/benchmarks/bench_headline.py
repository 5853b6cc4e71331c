"""The headline suite: a few minutes of asv that say whether xpsoftmax got slower.

``asv continuous --factor 1.1 main HEAD --bench Headline`` runs it for two commits. It times
what a model calls (softmax, log_softmax, mean cross-entropy, and cross-entropy's forward and
backward) on the frameworks people train with (NumPy, JAX under jit, PyTorch eager and
compiled), at a tiny size for per-call cost and at one size for throughput (torch.compile at the
throughput size only: see `common.headline_left_out`).

`Headline` times xpsoftmax alone: the frameworks' own kernels (``implementation="peer"``) are
the same code at every commit, so in a comparison of two commits they can only add noise, and
a neighbour's burst during a peer's process once failed a pull request that had not changed
``src/``. They are timed by `Peers`, with the same cases, which ``--bench Headline`` does not
select (asv matches the regular expression against ``bench_headline.Peers.time_call``, case
sensitively); ``asv run --bench "Headline|Peers"`` times both, for the ratios the Performance
page and ``docs/scripts/regressions_report.py`` draw.

The settings trade samples for time: every parameter combination runs in its own process per
round, so three rounds (interleaved between the two commits by ``asv continuous``) outvote a
slow process, and short samples, a few per round, keep each process well under a second once its
framework is imported and its function compiled (torch.compile's first compile in a process
costs seconds: that, not the timing, is most of the suite's run time).

Each process computes on one thread (PyTorch's intra-op pool, XLA's CPU pool): on a busy shared
machine a second thread waits for a core, and a millisecond call turns into a hundred, in one
sample or another. One thread makes the ratios to the peers, which are single-threaded too,
steady; the full suite (``bench_softmax``) keeps the frameworks' default threading.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings

from .common import (
    HEADLINE_FUNCTIONS,
    HEADLINE_SIZES,
    HEADLINE_VARIANT_IDS,
    XPBenchmark,
    compute_on_one_thread,
    headline_case,
)

# Imported with the suite rather than in `setup`: asv's fork server (asv.conf.json) imports the
# suite once and forks a process per benchmark and round, so each starts with the frameworks and
# torch.compile's compiler already loaded instead of paying seconds for them again.
for _module in ("scipy.special", "jax", "torch", "torch._dynamo", "torch._inductor.compile_fx"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)
# torch.compile's first compilation in a process probes the CPU's vector instructions, in
# subprocesses that each import torch: 3 of its 4 seconds. Probed here, once, the answer (cached
# by inductor) is inherited by every forked process. Subprocesses only: no thread outlives this,
# so forking stays safe (compiling here would start threads, and the forked processes hang).
with contextlib.suppress(ImportError, AttributeError):
    importlib.import_module("torch._inductor.cpu_vec_isa").valid_vec_isa_list()

# Commits before torch.compile became quiet (the benchmarks time old commits too) make it warn,
# once per helper, that it traces through array-api-compat's lru_cache'd functions; that would
# bury asv's output.
warnings.filterwarnings("ignore", "Dynamo detected a call to a `functools.lru_cache`", UserWarning)


class Headline(XPBenchmark):
    """xpsoftmax's softmax, log_softmax, cross-entropy and its gradient, per framework."""

    # The implementation stays a parameter, with one value, so that `Peers` and this class
    # report the same parameter tuples and their results pair up into ratios.
    params = (
        list(HEADLINE_VARIANT_IDS),
        list(HEADLINE_FUNCTIONS),
        list(HEADLINE_SIZES),
        ["xpsoftmax"],
    )
    param_names = ("variant", "function", "size", "implementation")
    # Three rounds, interleaved with the other commit's, each a process of a few samples: on a
    # shared machine the samples of one process share its moment (a neighbour's burst slows
    # them all), so what steadies a comparison is more processes spread over time, not more
    # samples in one. Measured: with two rounds, equal commits differed by up to 2.2x in a case.
    rounds = 3
    # Samples of >= 5 ms (asv picks `number` to fill one), 3 to 5 per round, 0.15 s at most.
    sample_time = 0.005
    repeat = (3, 5, 0.15)
    warmup_time = 0.02
    timeout = 120

    def setup(self, variant: str, function: str, size: str, implementation: str) -> None:
        compute_on_one_thread()
        self.case = headline_case(variant, function, implementation, size)


class Peers(Headline):
    """The frameworks' own kernels on the headline cases: the denominators of the ratios.

    Deliberately not named after `Headline`, so that ``--bench Headline`` leaves it out.
    """

    params = (*Headline.params[:3], ["peer"])
