"""Hypothesis property tests on NumPy, PyTorch and JAX (eager).

Where a property holds exactly in floating point the test asserts equality: logits on a grid of
1/8 with shifts by integers, and temperatures that are powers of two, make every shift and
division exact, so the shifted algorithm sees bit-identical shifted logits.
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

VARIANTS = ["numpy", "torch", "jax"]
EPS64 = 2.0**-52
PROPERTY_SETTINGS = settings(max_examples=15, deadline=None)

#: Logits on a grid of 1/8 within [-64, 64]: sums with integer shifts stay exact.
grid_logits = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6),
    elements=st.integers(-512, 512).map(lambda k: k / 8.0),
)
real_logits = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=8),
    # No subnormals: XLA on CPU flushes them to zero on input, a property of JAX, not of ours.
    elements=st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False, allow_subnormal=False),
)


def _run(vid: str, name: str, x: np.ndarray, *extra: np.ndarray, **kwargs: Any) -> np.ndarray:
    v = backends.variant(vid)
    arrays = [v.asarray(a) for a in (x, *extra)]
    return np.asarray(v.to_numpy(getattr(xpsoftmax, name)(*arrays, **kwargs)))


@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=real_logits, data=st.data())
def test_softmax_sums_to_one(vid: str, x: np.ndarray, data: st.DataObject) -> None:
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
    s = _run(vid, "softmax", x, axis=axis)
    assert np.all((s >= 0) & (s <= 1))
    n = x.shape[axis]
    np.testing.assert_allclose(np.sum(s, axis=axis), 1.0, rtol=0, atol=(n + 2) * EPS64)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=grid_logits, shift=st.integers(-(2**20), 2**20))
def test_shift_invariance_is_exact(vid: str, name: str, x: np.ndarray, shift: int) -> None:
    np.testing.assert_array_equal(_run(vid, name, x + shift, axis=-1), _run(vid, name, x, axis=-1))


@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=grid_logits, power=st.integers(-3, 3))
def test_temperature_is_a_division_exact_for_powers_of_two(
    vid: str, x: np.ndarray, power: int
) -> None:
    t = 2.0**power
    for name in ("softmax", "log_softmax"):
        np.testing.assert_array_equal(
            _run(vid, name, x, temperature=t), _run(vid, name, x / t), err_msg=name
        )
    np.testing.assert_array_equal(
        _run(vid, "logsumexp", x, temperature=t), t * _run(vid, "logsumexp", x / t)
    )


@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=real_logits, t=st.floats(0.3, 3.0))
def test_temperature_identity_within_bounds(vid: str, x: np.ndarray, t: float) -> None:
    """softmax(x, T) == softmax(x / T) up to the shifted algorithm's bound (4 + 2|z|) eps on
    each, |z| <= 100 / 0.3 here; x / T itself rounds once more."""
    a = _run(vid, "softmax", x, temperature=t)
    b = _run(vid, "softmax", x / t)
    np.testing.assert_allclose(a, b, rtol=(8 + 4 * 100 / 0.3 + 2 * 50 / 0.3) * EPS64, atol=1e-300)


@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=real_logits, t=st.floats(0.3, 3.0))
def test_jacobian_rows_sum_to_zero_and_it_is_symmetric(vid: str, x: np.ndarray, t: float) -> None:
    jac = _run(vid, "softmax_jacobian", x, temperature=t)
    n = x.shape[-1]
    magnitude = np.sum(np.abs(jac), axis=-1)
    assert np.all(np.abs(np.sum(jac, axis=-1)) <= 4 * (n + 2) * EPS64 * magnitude + 1e-300)
    np.testing.assert_allclose(jac, np.swapaxes(jac, -1, -2), rtol=4 * EPS64, atol=1e-300)
    log_jac = _run(vid, "log_softmax_jacobian", x, temperature=t)
    s = _run(vid, "softmax", x, temperature=t)
    # d log s_i / d x_j = J_ij / s_i: rows of the log Jacobian times s_i are the Jacobian's rows.
    np.testing.assert_allclose(s[..., :, None] * log_jac, jac, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("vid", VARIANTS)
@PROPERTY_SETTINGS
@given(x=real_logits, data=st.data())
def test_permutation_equivariance_and_smooth_maximum(
    vid: str, x: np.ndarray, data: st.DataObject
) -> None:
    perm = np.array(data.draw(st.permutations(range(x.shape[-1]))))
    s = _run(vid, "softmax", x)
    np.testing.assert_allclose(_run(vid, "softmax", x[..., perm]), s[..., perm], rtol=1e-13)
    lse = _run(vid, "logsumexp", x)
    m = np.max(x, axis=-1)
    assert np.all(lse >= m)
    assert np.all(lse <= m + np.log(x.shape[-1]) + 1e-12 * np.maximum(np.abs(m), 1))
