"""The test harness, shipped as ``xpsoftmax.testing``: exact oracle, accuracy bounds, accuracy runs.

What our own test suite, the docs' reports and ``xpsoftmax compare`` measure the library with:

* `xpsoftmax.testing.oracle`: the softmax family computed exactly with mpmath, and the error of a
  result in units of the dtype's epsilon;
* `xpsoftmax.testing.bounds`: how far from the exact value each function's result may be (the
  spec's accuracy bounds, docs: Specification, Accuracy);
* `xpsoftmax.testing.accuracy`: input families, and running xpsoftmax and the frameworks' own
  functions on them.

Importing this package imports nothing; its modules need NumPy and mpmath (the ``test`` or ``cli``
extra). Framework adapters live in `xpsoftmax.backends`, the command line in
`xpsoftmax.backends.cli`.
"""

from __future__ import annotations

# In an editable install backends/testing is also reachable as xpsoftmax.backends.testing, which
# the wheel does not ship and which would load a second copy of every module (and its caches).
if __name__ != "xpsoftmax.testing":
    raise ImportError(f"import xpsoftmax.testing, not {__name__}")
