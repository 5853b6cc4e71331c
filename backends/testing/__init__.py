"""The test harness, shipped as ``xpsoftmax.testing``: run your own function on every framework.

For library authors who write array-API code (docs: Testing your own function on every
framework):

* `variants`: the NumPy, array-api-strict, Dask, JAX (eager and `jax.jit`), PyTorch (eager and
  ``torch.compile``) and CuPy variants installed here, each able to make its arrays, call a
  function in its mode and bring the result back;
* `check_function`: a function run on every variant and checked for its call, laziness,
  devices, types, warnings, mutation, values and gradients, every check on every variant;
* `forgiven_warnings`: the frameworks' warnings about themselves that it forgives, with reasons;
* `benchmark`: the same function timed on every variant beside a peer, as a table;
* ``xpsoftmax.testing.pytest_plugin``: an ``xp_variant`` fixture over the variants, and markers
  that skip or expect failures of named variants.

What our own test suite, the docs' reports and ``xpsoftmax compare`` measure the library with
lives here too: `xpsoftmax.testing.oracle` (the softmax family computed exactly with mpmath),
`xpsoftmax.testing.bounds` (the spec's accuracy bounds) and `xpsoftmax.testing.accuracy` (input
families and accuracy runs).

Importing this package imports no array library, and the toolkit never imports a framework that
is not installed; checking needs NumPy, the oracle mpmath (the ``test`` or ``cli`` extra).
Framework adapters live in `xpsoftmax.backends`, the command line in `xpsoftmax.backends.cli`.
"""

from __future__ import annotations

# In an editable install backends/testing is also reachable as xpsoftmax.backends.testing, which
# the wheel does not ship and which would load a second copy of every module (and its caches).
if __name__ != "xpsoftmax.testing":
    raise ImportError(f"import xpsoftmax.testing, not {__name__}")

from ._benchmark import BenchmarkTable, Timing, benchmark
from ._checks import check_function
from ._matrix import variants
from ._running import forgiven_warnings

__all__ = [
    "BenchmarkTable",
    "Timing",
    "benchmark",
    "check_function",
    "forgiven_warnings",
    "variants",
]
