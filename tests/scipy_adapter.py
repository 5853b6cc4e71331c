"""A pytest plugin that runs SciPy's own logsumexp/softmax/log_softmax tests against xpsoftmax.

Loaded with ``-p scipy_adapter`` into a pytest run of SciPy's installed test module
(``--pyargs scipy.special.tests.test_logsumexp``); `test_scipy_suite.py` starts that run. Before
the test module is imported, SciPy's three functions are replaced by thin adapters over ours,
so the module's own ``from scipy.special import ...`` and its ``make_xp_test_case`` decorators
(which wrap the functions in ``jax.jit`` and in Dask's no-compute check) pick up the adapters.
The adapters translate only SciPy's conventions:

* ``axis=None`` (all axes) is SciPy's default, ``-1`` ours;
* SciPy returns a NumPy scalar where a NumPy result is 0-d (``out[()]``).

Each test's outcome, with its skip or xfail reason, is written as JSON lines to the file named
by ``XPSOFTMAX_SCIPY_REPORT``, for the calling test to check.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
import scipy.special
from scipy._lib._array_api import xp_capabilities_table

import xpsoftmax


def _scipy_scalar(result: Any) -> Any:
    """A 0-d NumPy array as the NumPy scalar SciPy returns; anything else unchanged."""
    if isinstance(result, np.ndarray) and result.ndim == 0:
        return result[()]
    return result


def logsumexp(
    a: Any, axis: Any = None, b: Any = None, keepdims: bool = False, return_sign: bool = False
) -> Any:
    # The new arguments only when given, so that this adapter also runs (and counts what
    # passes) against a version of xpsoftmax without them.
    extra: dict[str, Any] = {} if b is None else {"b": b}
    if return_sign:
        extra["return_sign"] = True
    result = xpsoftmax.logsumexp(a, axis=axis, keepdims=keepdims, **extra)
    if return_sign:
        return tuple(_scipy_scalar(r) for r in result)
    return _scipy_scalar(result)


def softmax(x: Any, axis: Any = None) -> Any:
    return _scipy_scalar(xpsoftmax.softmax(x, axis=axis))


def log_softmax(x: Any, axis: Any = None) -> Any:
    return _scipy_scalar(xpsoftmax.log_softmax(x, axis=axis))


def _install() -> None:
    for adapter in (logsumexp, softmax, log_softmax):
        original = getattr(scipy.special, adapter.__name__)
        # make_xp_test_case reads the backends SciPy declares for its function: ours run
        # under the same declaration, so SciPy's own skips and xfails apply unchanged.
        xp_capabilities_table[adapter] = xp_capabilities_table[original]
        setattr(scipy.special, adapter.__name__, adapter)


_install()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get("XPSOFTMAX_SCIPY_REPORT")
    if not path or not (report.when == "call" or report.outcome != "passed"):
        return
    if hasattr(report, "wasxfail"):
        outcome, reason = ("xfailed" if report.skipped else "xpassed"), report.wasxfail
    elif report.skipped:
        outcome = "skipped"
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
    else:
        outcome, reason = report.outcome, ""
        if report.failed:
            reason = str(report.longrepr)[-3000:]
    record = {"test": report.nodeid, "when": report.when, "outcome": outcome, "reason": reason}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
