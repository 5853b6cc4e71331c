"""The headline suite: a few minutes of asv that say whether xpsoftmax got slower.

``asv continuous --factor 1.1 main HEAD --bench Headline`` runs it for two commits. It times
what a model calls (softmax, log_softmax, mean cross-entropy, and cross-entropy's forward and
backward) on the frameworks people train with (NumPy, JAX under jit, PyTorch eager and
compiled), at a tiny size for per-call cost and at one size for throughput, each beside the
framework's own kernel (``implementation="peer"``) so a slowdown of the machine shows on both.

The settings trade samples for time: every parameter combination runs in its own process per
round, so two rounds (interleaved between the two commits by ``asv continuous``) catch a slow
process, and a short sample time with a minimum of samples per round keeps each process under a
couple of seconds once its framework is imported and its function compiled.
"""

from __future__ import annotations

import contextlib
import importlib
import warnings

from .common import (
    HEADLINE_FUNCTIONS,
    HEADLINE_SIZES,
    HEADLINE_VARIANT_IDS,
    IMPLEMENTATIONS,
    XPBenchmark,
    headline_case,
)

# Imported with the suite rather than in `setup`: asv's fork server (asv.conf.json) imports the
# suite once and forks a process per benchmark and round, so each starts with the frameworks and
# torch.compile's compiler already loaded instead of paying seconds for them again.
for _module in ("scipy.special", "jax", "torch", "torch._dynamo", "torch._inductor.compile_fx"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)

# torch.compile says, once per helper, that it traces through array-api-compat's lru_cache'd
# functions (pyproject.toml ignores the same warning in the tests); it would bury asv's output.
warnings.filterwarnings("ignore", "Dynamo detected a call to a `functools.lru_cache`", UserWarning)


class Headline(XPBenchmark):
    """softmax, log_softmax, cross-entropy and its gradient, per framework, beside the peer."""

    params = (
        list(HEADLINE_VARIANT_IDS),
        list(HEADLINE_FUNCTIONS),
        list(HEADLINE_SIZES),
        list(IMPLEMENTATIONS),
    )
    param_names = ("variant", "function", "size", "implementation")
    rounds = 2
    # Samples of >= 5 ms (asv picks `number` to fill one), 5 to 15 per round, 0.5 s at most.
    sample_time = 0.005
    repeat = (5, 15, 0.5)
    warmup_time = 0.05
    timeout = 120

    def setup(self, variant: str, function: str, size: str, implementation: str) -> None:
        self.case = headline_case(variant, function, implementation, size)
