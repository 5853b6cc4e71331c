"""Transformations: JAX (jit, vmap, grad), PyTorch autograd, and Dask laziness.

Gradients are checked against our own closed-form VJPs (independently checked against the oracle
in test_values.py) and against the gradients of the frameworks' own functions. The special-value
table's gradient promise (finite, never NaN, for every row but the NaN one) is checked by pulling
a cotangent back through every row of test_special_values.ROWS. torch.compile(fullgraph=True) of
every public function is in test_values.py::test_compiled (a graph break there is an error).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import FUNCTIONS, PRODUCTS, REDUCING, assert_within
from test_special_values import ROW_NAMES, WHERE, X
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import allowed_error

import xpsoftmax
from xpsoftmax import backends

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = jax.numpy
backends.get("jax").xp  # noqa: B018 - turns on float64 in JAX, as the backend does for every test

VJP_OF = {"softmax": xpsoftmax.softmax_vjp, "log_softmax": xpsoftmax.log_softmax_vjp}
NAN_ROWS = np.array(["NaN" in name and "excluded" not in name for name in ROW_NAMES])


@pytest.fixture
def x64(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(3, 5)) * 2.0


# -- JAX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_jax_grad_matches_closed_form_and_jax_nn(name: str, x64: np.ndarray) -> None:
    g = np.linspace(-1.0, 2.0, x64.size).reshape(x64.shape)
    ours = getattr(xpsoftmax, name)
    reference = getattr(jax.nn, name)
    grad = jax.grad(lambda x: jnp.sum(jnp.asarray(g) * ours(x, axis=-1)))(jnp.asarray(x64))
    ref_grad = jax.grad(lambda x: jnp.sum(jnp.asarray(g) * reference(x, axis=-1)))(jnp.asarray(x64))
    closed = VJP_OF[name](x64, g, axis=-1)
    np.testing.assert_allclose(np.asarray(grad), closed, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-12, atol=1e-15)


def test_jax_grad_of_logsumexp_is_softmax(x64: np.ndarray) -> None:
    t = 0.37
    grad = jax.grad(lambda x: jnp.sum(xpsoftmax.logsumexp(x, temperature=t)))(jnp.asarray(x64))
    exact = oracle.softmax(x64, -1, oracle.round_to(t, "float64"))
    assert_within(
        np.asarray(grad), exact, "float64", allowed_error("softmax", "float64", x64, -1, t, None)
    )
    ref_grad = jax.grad(lambda x: jnp.sum(jax.nn.logsumexp(x, axis=-1)))(jnp.asarray(x64))
    np.testing.assert_allclose(
        np.asarray(jax.grad(lambda x: jnp.sum(xpsoftmax.logsumexp(x)))(jnp.asarray(x64))),
        np.asarray(ref_grad),
        rtol=1e-13,
    )


def test_jax_grad_of_cross_entropy_matches_reference(x64: np.ndarray) -> None:
    target = jnp.asarray([0, 4, 2])
    jax_backend = backends.get("jax")

    def ours(x: Any) -> Any:
        return xpsoftmax.cross_entropy(x, target, label_smoothing=0.1)

    def ref(x: Any) -> Any:
        return jax_backend.ref_cross_entropy(x, target, label_smoothing=0.1)

    np.testing.assert_allclose(
        np.asarray(jax.grad(ours)(jnp.asarray(x64))),
        np.asarray(jax.grad(ref)(jnp.asarray(x64))),
        rtol=1e-12,
        atol=1e-16,
    )


def test_jax_jit_with_traced_temperature(x64: np.ndarray) -> None:
    """The temperature may be a traced argument (a 0-d array) under jax.jit."""
    f = jax.jit(lambda x, t: xpsoftmax.softmax(x, temperature=t))
    got = np.asarray(f(jnp.asarray(x64), jnp.asarray(0.37)))
    exact = oracle.softmax(x64, -1, 0.37)
    assert_within(got, exact, "float64", allowed_error("softmax", "float64", x64, -1, 0.37, None))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_jax_vmap(name: str, x64: np.ndarray) -> None:
    """vmap over the batch axis gives the batched call's result."""
    fn = getattr(xpsoftmax, name)
    x = jnp.asarray(x64)
    if name in PRODUCTS:
        u = jnp.asarray(x64[::-1].copy())
        mapped = jax.vmap(lambda a, b: fn(a, b, axis=-1))(x, u)
        direct = fn(x, u, axis=-1)
    elif name == "cross_entropy":
        target = jnp.asarray([1, 0, 4])
        mapped = jax.vmap(lambda a, b: fn(a, b, reduction="none"))(x, target)
        direct = fn(x, target, reduction="none")
    else:
        mapped = jax.vmap(lambda a: fn(a, axis=-1))(x)
        direct = fn(x, axis=-1)
    np.testing.assert_allclose(np.asarray(mapped), np.asarray(direct), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", REDUCING)
def test_jax_gradients_are_finite_for_special_values(name: str) -> None:
    fn = getattr(xpsoftmax, name)
    x, where = jnp.asarray(X), jnp.asarray(WHERE)
    out, pullback = jax.vjp(lambda a: fn(a, axis=-1, where=where), x)
    (grad,) = pullback(jnp.ones_like(out))
    grad = np.asarray(grad)
    assert np.all(np.isfinite(grad[~NAN_ROWS])), [
        n for n, bad in zip(ROW_NAMES, ~np.isfinite(grad).all(axis=-1), strict=True) if bad
    ]


# -- PyTorch -----------------------------------------------------------------------------------------


def _torch_grad(fn: Any, x64: np.ndarray, g: np.ndarray) -> np.ndarray:
    x = torch.tensor(x64, requires_grad=True)
    out = fn(x)
    (grad,) = torch.autograd.grad(out, x, grad_outputs=torch.tensor(g).reshape(out.shape))
    return grad.numpy()


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_torch_autograd_matches_torch(name: str, x64: np.ndarray) -> None:
    ours = getattr(xpsoftmax, name)
    ref = {"logsumexp": torch.logsumexp}.get(name, getattr(torch, name))
    g = np.linspace(-1.0, 2.0, x64.size).reshape(x64.shape)
    if name == "logsumexp":
        g = g[:, 0].copy()
    got = _torch_grad(lambda x: ours(x, axis=-1), x64, g)
    expected = _torch_grad(lambda x: ref(x, -1), x64, g)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    if name in VJP_OF:
        np.testing.assert_allclose(got, VJP_OF[name](x64, g), rtol=1e-12, atol=1e-15)


def test_torch_autograd_of_cross_entropy(x64: np.ndarray) -> None:
    target = torch.tensor([0, 4, 2])
    got = _torch_grad(lambda x: xpsoftmax.cross_entropy(x, target), x64, np.array(1.0))
    expected = _torch_grad(
        lambda x: torch.nn.functional.cross_entropy(x, target), x64, np.array(1.0)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("name", REDUCING)
def test_torch_gradients_are_finite_for_special_values(name: str) -> None:
    fn = getattr(xpsoftmax, name)
    where = torch.tensor(WHERE)
    ones = np.ones(X.shape[:1] if name == "logsumexp" else X.shape)
    grad = _torch_grad(lambda a: fn(a, axis=-1, where=where), X, ones)
    assert np.all(np.isfinite(grad[~NAN_ROWS])), [
        n for n, bad in zip(ROW_NAMES, ~np.isfinite(grad).all(axis=-1), strict=True) if bad
    ]


# -- Dask --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torch_compile_with_axis_as_an_argument() -> None:
    """torch.compile turns an int argument that changes between calls into a symbolic int; the
    axis must still work, with no graph break, one value after another."""
    torch._dynamo.reset()
    ours = {
        "logsumexp": torch.compile(lambda x, a: xpsoftmax.logsumexp(x, axis=a), fullgraph=True),
        "log_softmax": torch.compile(lambda x, a: xpsoftmax.log_softmax(x, axis=a), fullgraph=True),
        "softmax_jvp": torch.compile(
            lambda x, a: xpsoftmax.softmax_jvp(x, torch.ones_like(x), axis=a), fullgraph=True
        ),
    }
    x = torch.tensor(np.linspace(-3.0, 4.0, 24).reshape(2, 3, 4))
    # The second int makes the axis symbolic; the third, negative, runs on that graph.
    for axis in (0, 1, -1, (0, 2)):
        dims = axis if isinstance(axis, tuple) else (axis,)
        expected = torch.logsumexp(x, dim=dims)
        torch.testing.assert_close(ours["logsumexp"](x, axis), expected, rtol=1e-14, atol=0)
        expected = x - torch.logsumexp(x, dim=dims, keepdim=True)
        torch.testing.assert_close(ours["log_softmax"](x, axis), expected, rtol=1e-14, atol=1e-15)
        if isinstance(axis, int):
            # J 1 = 0: softmax sums to one, so no direction of equal steps changes it.
            jvp = ours["softmax_jvp"](x, axis)
            torch.testing.assert_close(jvp, torch.zeros_like(x), rtol=0, atol=1e-15)


def _refuse_to_compute(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the library computed a Dask graph: it must stay lazy")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_dask_stays_lazy_and_splits_the_axis(name: str, rng: np.random.Generator) -> None:
    """No compute() inside any function, with the softmax axis split over several chunks."""
    import dask
    import dask.array as da

    x64 = rng.normal(size=(3, 7))
    u64 = rng.normal(size=(3, 7))
    where64 = rng.random((3, 7)) < 0.7
    t64 = rng.uniform(0.5, 2.0, size=(3, 1))
    target64 = rng.integers(0, 7, size=(3,))
    dask_backend = backends.get("dask")
    x = dask_backend.asarray(x64, chunks=(2, 2))
    assert x.numblocks[-1] == 4
    kwargs = {
        "where": dask_backend.asarray(where64, chunks=(2, 3)),
        "temperature": dask_backend.asarray(t64, chunks=(2, 1)),
    }
    extra: list[Any] = []
    if name in PRODUCTS:
        extra = [dask_backend.asarray(u64, chunks=(1, 3))]
    elif name == "cross_entropy":
        extra = [dask_backend.asarray(target64, chunks=(2,))]
    with dask.config.set(scheduler=_refuse_to_compute):
        result = getattr(xpsoftmax, name)(x, *extra, axis=-1, **kwargs)
    assert isinstance(result, da.Array)
    got = np.asarray(result.compute(scheduler="sync"))
    if name in PRODUCTS:
        exact = getattr(oracle, name)(x64, u64, -1, t64, where64)
    elif name == "cross_entropy":
        exact = oracle.cross_entropy(x64, target64, -1, t64, where64)
    else:
        exact = getattr(oracle, name)(x64, -1, t64, where64)
    if name in ("softmax", "log_softmax", "logsumexp", "cross_entropy"):
        bound = allowed_error(name, "float64", x64, -1, t64, where64)
        assert_within(got, np.asarray(exact, dtype=object), "float64", bound)
    else:  # Jacobians and products: their accuracy is checked in test_values; here the values
        np.testing.assert_allclose(got, oracle.to_float(exact), rtol=1e-12, atol=1e-14)
