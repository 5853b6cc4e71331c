"""Logits that a compiler computes twice, in two fusions, may differ there by a few ulps.

XLA recomputes an elementwise input (here a softcap, ``c * tanh(x / c)``) inside each fusion
that reads it, and under ``vmap`` of ``lax.map`` two fusions rounded the maximum differently: the
maximum's exponential came out just below 1. The accurate tail sum must not take it for one of
the small terms (that cost ``log 2`` once). Checked against SciPy in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp as scipy_logsumexp

import xpsoftmax

jax = pytest.importorskip("jax")
jnp = jax.numpy


@pytest.mark.parametrize("cap", [5.0, 30.0, 50.0])
def test_softcapped_logits_under_vmap_of_map(cap: float) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 16, 500)).astype(np.float32) * 20

    def per_row(row: object) -> object:
        return xpsoftmax.logsumexp(cap * jnp.tanh(row / cap))

    mapped = jax.jit(jax.vmap(lambda rows: jax.lax.map(per_row, rows)))
    remat = jax.jit(jax.vmap(lambda rows: jax.lax.map(jax.checkpoint(per_row), rows)))
    expected = scipy_logsumexp(cap * np.tanh(x.astype(np.float64) / cap), axis=-1)
    for fn in (mapped, remat):
        got = np.asarray(fn(jnp.asarray(x)), dtype=np.float64)
        # float32 logits up to `cap`: a few ulps of the result, nowhere near log 2.
        np.testing.assert_allclose(got, expected, rtol=0, atol=64 * cap * np.finfo(np.float32).eps)
