"""Hypothesis properties linking the public functions, on every eager CPU backend, in float64.

They complement tests/test_properties.py (sums to one, shift invariance, temperature identity,
Jacobian symmetry and rows): log_softmax is log(softmax) where softmax is a normal number,
monotonicity, the bounds of logsumexp, JVP equal to the Jacobian product, and cross_entropy equal
to the negative mean log_softmax at the targets. Tolerances are in float64 eps, scaled by what the
shifted algorithm's error grows with (|x - max| / T, the number of terms).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xpsoftmax
from xpsoftmax import backends

VARIANTS = ["numpy", "array_api_strict", "dask", "jax", "torch"]
EPS = 2.0**-52
TINY = 2.0**-1022
# Few examples: eager JAX compiles one kernel per shape and temperature, which costs ~0.1 s.
SETTINGS = settings(max_examples=6, deadline=None)

# A few fixed shapes (a single entry, a single row, ...): eager JAX compiles once per shape.
rows = hnp.arrays(
    np.float64,
    st.sampled_from([(1, 1), (1, 4), (3, 2), (2, 5)]),
    elements=st.floats(-80.0, 80.0, allow_nan=False, allow_infinity=False),
)
temperatures = st.sampled_from([0.05, 0.3, 1.0, 7.5])


def _run(vid: str, name: str, *arrays: np.ndarray, **kwargs: Any) -> np.ndarray:
    v = backends.variant(vid)
    out = getattr(xpsoftmax, name)(*(v.asarray(a, dtype=a.dtype.name) for a in arrays), **kwargs)
    return np.asarray(v.to_numpy(out), dtype=np.float64)


def _spread(x: np.ndarray, t: float) -> np.ndarray:
    """|x - max| / T per entry, the factor rounding errors of the shift are multiplied by."""
    return np.abs(x - np.max(x, axis=-1, keepdims=True)) / t


@pytest.mark.parametrize("vid", VARIANTS)
@SETTINGS
@given(x=rows, t=temperatures)
def test_log_softmax_is_log_of_softmax(vid: str, x: np.ndarray, t: float) -> None:
    s = _run(vid, "softmax", x, temperature=t)
    log_s = _run(vid, "log_softmax", x, temperature=t)
    normal = s >= TINY
    # An error of d eps relative in s is d eps absolute in log(s).
    tolerance = (8.0 + 2.0 * _spread(x, t)) * EPS * np.maximum(1.0, np.abs(log_s))
    log_of_s = np.log(np.where(normal, s, 1.0))
    assert np.all(np.abs(log_s - log_of_s)[normal] <= tolerance[normal])


@pytest.mark.parametrize("vid", VARIANTS)
@SETTINGS
@given(x=rows, t=temperatures)
def test_monotone_in_each_logit(vid: str, x: np.ndarray, t: float) -> None:
    order = np.argsort(x, axis=-1, kind="stable")
    for name in ("softmax", "log_softmax"):
        sorted_result = np.take_along_axis(_run(vid, name, x, temperature=t), order, axis=-1)
        assert np.all(np.diff(sorted_result, axis=-1) >= 0), name


@pytest.mark.parametrize("vid", VARIANTS)
@SETTINGS
@given(x=rows, t=temperatures)
def test_logsumexp_between_max_and_max_plus_t_log_n(vid: str, x: np.ndarray, t: float) -> None:
    lse = _run(vid, "logsumexp", x, temperature=t)
    top = np.max(x, axis=-1)
    slack = 4.0 * EPS * np.maximum(np.abs(top), np.abs(lse))
    assert np.all(lse >= top - slack)
    assert np.all(lse <= top + t * np.log(x.shape[-1]) + slack + 4.0 * EPS * t)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("vid", VARIANTS)
@SETTINGS
@given(x=rows, t=temperatures, data=st.data())
def test_jvp_is_the_jacobian_product(
    vid: str, name: str, x: np.ndarray, t: float, data: st.DataObject
) -> None:
    v = data.draw(hnp.arrays(np.float64, x.shape, elements=st.floats(-4.0, 4.0, allow_nan=False)))
    jvp = _run(vid, f"{name}_jvp", x, v, temperature=t)
    jacobian = _run(vid, f"{name}_jacobian", x, temperature=t)
    product = np.einsum("bij,bj->bi", jacobian, v)
    # Both cancel in v - <s, v>: measure against the size of the terms.
    scale = np.einsum("bij,bj->bi", np.abs(jacobian), np.abs(v)) + np.abs(jvp) + TINY
    n = x.shape[-1]
    bound = (8.0 + 4.0 * np.max(_spread(x, t), axis=-1, keepdims=True) + 2 * n) * EPS
    assert np.all(np.abs(jvp - product) <= bound * scale)


@pytest.mark.parametrize("vid", VARIANTS)
@SETTINGS
@given(x=rows, t=temperatures, data=st.data())
def test_cross_entropy_is_negative_mean_log_softmax_at_targets(
    vid: str, x: np.ndarray, t: float, data: st.DataObject
) -> None:
    samples, n = x.shape
    target = data.draw(hnp.arrays(np.int64, (samples,), elements=st.integers(0, n - 1)))
    loss = _run(vid, "cross_entropy", x, target, temperature=t)
    log_s = _run(vid, "log_softmax", x, temperature=t)
    picked = -log_s[np.arange(samples), target]
    expected = np.mean(picked)
    # A sum of non-negative terms: each off by a few eps, the sum by one more per term.
    tolerance = (4.0 + n + samples) * EPS * np.mean(np.abs(picked)) + TINY
    assert abs(float(loss) - expected) <= tolerance
