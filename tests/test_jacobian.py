"""Jacobians against the frameworks' autodiff of their own softmax, products against the
Jacobians, and the spec's accuracy case for a probability near 1."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from conftest import JACOBIANS, PRODUCTS, assert_within, call
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import allowed_error, error_scale

import xpsoftmax
from xpsoftmax import backends

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
backends.get("jax").xp  # noqa: B018 - turns on float64 in JAX, as the backend does for every test

CASES = [(None, 1.0, -1), (None, 0.37, -1), ("mask", 1.0, -1), ("mask", 0.5, 0)]


def _inputs(rng: np.random.Generator, mask: Any) -> tuple[np.ndarray, np.ndarray | None]:
    x = rng.normal(size=(4, 5)) * 2.0
    where = None
    if mask:
        where = rng.random(x.shape) < 0.7
        where[0] = False  # one slice with nothing in it
    return x, where


@pytest.mark.parametrize(("mask", "t", "axis"), CASES)
@pytest.mark.parametrize("name", JACOBIANS)
def test_jacobian_matches_jax_jacfwd(
    name: str, mask: Any, t: float, axis: int, rng: np.random.Generator
) -> None:
    jnp = jax.numpy
    x, where = _inputs(rng, mask)
    reference = jax.nn.softmax if name == "softmax_jacobian" else jax.nn.log_softmax
    xs, ws = np.moveaxis(x, axis, -1), None if where is None else np.moveaxis(where, axis, -1)

    def one_slice(row: Any, w: Any) -> Any:
        return reference(row / t, where=w)

    mask_rows = jnp.ones(xs.shape, dtype=bool) if ws is None else jnp.asarray(ws)
    expected = jax.vmap(jax.jacfwd(one_slice), in_axes=(0, 0))(
        jnp.asarray(xs.reshape(-1, xs.shape[-1])), mask_rows.reshape(-1, xs.shape[-1])
    )
    expected = np.asarray(expected).reshape(xs.shape[:-1] + (xs.shape[-1],) * 2)
    if name == "log_softmax_jacobian" and ws is not None:
        # spec: Jacobians, 0 where i or j is excluded (rows of excluded outputs included).
        expected = np.where(ws[..., :, None] & ws[..., None, :], expected, 0.0)
    got = xpsoftmax.__dict__[name](
        jnp.asarray(x),
        axis=axis,
        temperature=t,
        where=None if where is None else jnp.asarray(where),
    )
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("mask", "t", "axis"), CASES[:2])
@pytest.mark.parametrize("name", JACOBIANS)
def test_jacobian_matches_torch_jacrev(
    name: str, mask: Any, t: float, axis: int, rng: np.random.Generator
) -> None:
    x, _ = _inputs(rng, mask)
    reference = torch.softmax if name == "softmax_jacobian" else torch.log_softmax
    rows = torch.tensor(np.moveaxis(x, axis, -1).copy())
    expected = torch.func.vmap(torch.func.jacrev(lambda r: reference(r / t, -1)))(rows)
    got = getattr(xpsoftmax, name)(torch.tensor(x), axis=axis, temperature=t)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", [*JACOBIANS, *PRODUCTS])
def test_torch_vmap_over_the_jacobian_family(name: str, rng: np.random.Generator) -> None:
    """torch.func.vmap runs the Jacobians and products slice by slice: the same values as one
    batched call, and for the Jacobians as torch's own vmap(jacrev)."""
    x = torch.tensor(rng.normal(size=(4, 5)) * 2.0)
    fn = getattr(xpsoftmax, name)
    args = (x,) if name in JACOBIANS else (x, torch.tensor(rng.normal(size=(4, 5))))
    got = torch.func.vmap(fn)(*args)
    torch.testing.assert_close(got, fn(*args), rtol=1e-14, atol=1e-16)
    if name in JACOBIANS:
        reference = torch.softmax if name == "softmax_jacobian" else torch.log_softmax
        expected = torch.func.vmap(torch.func.jacrev(lambda r: reference(r, -1)))(x)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis", [-1, 0])
def test_products_equal_jacobian_products(
    eager_variant: backends.Variant, axis: int, rng: np.random.Generator
) -> None:
    """J v and g^T J from the n x n Jacobians equal the JVP and VJP functions."""
    v = eager_variant
    x, where = _inputs(rng, "mask")
    u = rng.normal(size=x.shape)
    t_shape = (1, 5) if axis == 0 else (4, 1)
    kwargs = {"where": v.asarray(where), "temperature": v.asarray(rng.uniform(0.5, 2.0, t_shape))}
    xb, ub = v.asarray(x), v.asarray(u)
    u_last = np.moveaxis(u, axis, -1)
    for kind in ("softmax", "log_softmax"):
        jac = v.to_numpy(call(v, f"{kind}_jacobian", xb, array_kwargs=kwargs, axis=axis))
        jvp = v.to_numpy(call(v, f"{kind}_jvp", xb, ub, array_kwargs=kwargs, axis=axis))
        vjp = v.to_numpy(call(v, f"{kind}_vjp", xb, ub, array_kwargs=kwargs, axis=axis))
        from_jac_jvp = np.moveaxis(np.einsum("...ij,...j->...i", jac, u_last), -1, axis)
        from_jac_vjp = np.moveaxis(np.einsum("...i,...ij->...j", u_last, jac), -1, axis)
        np.testing.assert_allclose(jvp, from_jac_jvp, rtol=1e-12, atol=1e-14, err_msg=kind)
        np.testing.assert_allclose(vjp, from_jac_vjp, rtol=1e-12, atol=1e-14, err_msg=kind)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jacobian_near_probability_one(eager_variant: backends.Variant, dtype: str) -> None:
    """For x = [0, -40], softmax_jacobian(x)[0, 0] = s0 (1 - s0) is about 4.25e-18, not 0 (spec:
    Accuracy): 1 - s0 comes from the tail, never from a subtraction from 1. So do the products."""
    v = eager_variant
    x = np.array([0.0, -40.0])
    u = np.array([1.0, -0.5])
    xb, ub = v.asarray(x, dtype=dtype), v.asarray(u, dtype=dtype)
    for name in (*JACOBIANS, *PRODUCTS):
        args = (xb, ub) if name in PRODUCTS else (xb,)
        got = np.asarray(v.to_numpy(call(v, name, *args, axis=-1)), dtype=np.float64)
        exact = getattr(oracle, name)(*((x, u) if name in PRODUCTS else (x,)))
        bound = allowed_error(name, dtype, x, -1, 1.0, None)
        scale = error_scale(name, x, u if name in PRODUCTS else None, -1, 1.0, None, exact)
        assert_within(got, exact, dtype, bound, scale, what=name)
    jac = v.to_numpy(call(v, "softmax_jacobian", xb, axis=-1))
    assert abs(float(jac[0, 0]) / 4.248354255291589e-18 - 1) < 1e-5


@pytest.mark.parametrize(
    "name", ["softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp"]
)
def test_products_of_vectors_near_the_float_limit(name: str) -> None:
    """A finite vector near the float maximum gives, silently, the product that the same vector
    scaled down by a power of two gives scaled back up (the product is linear in it), +-inf
    where that overflows."""
    x = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    v = np.array([[1e308, -1e308, 0.0], [1.7e308, 1.7e308, -1.7e308]])
    fn = getattr(xpsoftmax, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fn(x, v)
    with np.errstate(over="ignore"):  # the reference's own scaling back may overflow
        expected = fn(x, v / 2.0**20) * 2.0**20
    np.testing.assert_array_equal(got, expected)
