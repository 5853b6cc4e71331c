"""The closed-form derivative rules under each framework's autodiff (spec: Derivatives).

Checked against independent values: central finite differences in float64 (temperature and soft
target derivatives), the frameworks' own functions and their autodiff (PyTorch's double backward,
jax.nn), forward mode against reverse mode, and the mpmath oracle's Jacobian at a dominant entry,
where only the closed forms keep their relative accuracy. Memory saved for the backward pass is
measured as the frameworks see it (``saved_tensors_hooks``, ``print_saved_residuals``) and held
to the frameworks' own ops.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, load_module
from xpsoftmax.testing import oracle

import xpsoftmax
from xpsoftmax import backends

jax = pytest.importorskip("jax")

torch = pytest.importorskip("torch")
jnp = jax.numpy
F = torch.nn.functional
backends.get("jax").xp  # noqa: B018 - turns on float64 in JAX, as the backend does for every test

REDUCING = ("softmax", "log_softmax", "logsumexp")


def _loss_of(name: str, target: Any = None, **kwargs: Any) -> Callable[..., Any]:
    """A scalar function of (logits, temperature) for every function of the family."""
    fn = getattr(xpsoftmax, name)

    def loss(x: Any, t: Any) -> Any:
        if name == "cross_entropy":
            return fn(x, target, temperature=t, **kwargs)
        out = fn(x, axis=-1, temperature=t, **kwargs)
        weights = np.linspace(-1.0, 2.0, int(np.prod(out.shape))).reshape(out.shape)
        module: Any = np
        if not isinstance(out, np.ndarray):
            module, weights = (jnp if isinstance(out, jax.Array) else torch), _like(out, weights)
        if name == "log_softmax" and "where" in kwargs:  # -inf where excluded: leave those out
            out = module.where(kwargs["where"], out, 0.0)
        return (out * weights).sum()

    return loss


def _like(a: Any, values: np.ndarray) -> Any:
    return jnp.asarray(values) if isinstance(a, jax.Array) else torch.tensor(values)


def _central_difference(f: Callable[[np.ndarray], float], a: np.ndarray, h: float) -> np.ndarray:
    grad = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[i] = h
        grad[i] = (f(a + step) - f(a - step)) / (2 * h)
    return grad


@pytest.fixture
def logits(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(3, 5)) * 2.0


@pytest.mark.parametrize("name", [*REDUCING, "cross_entropy"])
def test_temperature_gradient_matches_finite_differences(
    name: str, logits: np.ndarray, rng: np.random.Generator
) -> None:
    """d/dT of an array temperature (one per slice), by JAX and PyTorch, against central
    differences of the NumPy evaluation (no autodiff there)."""
    t = rng.uniform(0.5, 2.0, size=(3, 1))
    target = np.array([0, 4, 2])
    where = rng.random(logits.shape) < 0.8
    where[:, 0] = True
    kwargs: dict[str, Any] = {"where": where}
    if name == "cross_entropy":
        kwargs["label_smoothing"] = 0.1
    numpy_loss = _loss_of(name, target, **kwargs)
    expected = _central_difference(lambda a: float(numpy_loss(logits, a)), t, 1e-6)

    jax_kwargs = {k: jnp.asarray(v) for k, v in kwargs.items() if k == "where"}
    jax_kwargs.update({k: v for k, v in kwargs.items() if k != "where"})
    jax_loss = _loss_of(name, jnp.asarray(target), **jax_kwargs)
    got_jax = jax.grad(jax_loss, argnums=1)(jnp.asarray(logits), jnp.asarray(t))
    np.testing.assert_allclose(np.asarray(got_jax), expected, rtol=1e-6, atol=1e-9)

    torch_kwargs = {k: torch.tensor(v) for k, v in kwargs.items() if k == "where"}
    torch_kwargs.update({k: v for k, v in kwargs.items() if k != "where"})
    torch_loss = _loss_of(name, torch.tensor(target), **torch_kwargs)
    tt = torch.tensor(t, requires_grad=True)
    (got_torch,) = torch.autograd.grad(torch_loss(torch.tensor(logits), tt), tt)
    np.testing.assert_allclose(got_torch.numpy(), expected, rtol=1e-6, atol=1e-9)


def test_soft_target_gradient_matches_torch_and_finite_differences(
    logits: np.ndarray, rng: np.random.Generator
) -> None:
    q = rng.dirichlet(np.ones(5), size=3)
    weight = rng.uniform(0.5, 2.0, size=5)

    def numpy_loss(a: np.ndarray) -> float:
        return float(xpsoftmax.cross_entropy(logits, a, label_smoothing=0.2, weight=weight))

    expected = _central_difference(numpy_loss, q, 1e-6)
    qt = torch.tensor(q, requires_grad=True)
    loss = xpsoftmax.cross_entropy(
        torch.tensor(logits), qt, label_smoothing=0.2, weight=torch.tensor(weight)
    )
    (got,) = torch.autograd.grad(loss, qt)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-9)
    qr = torch.tensor(q, requires_grad=True)
    ref = F.cross_entropy(
        torch.tensor(logits), qr, label_smoothing=0.2, weight=torch.tensor(weight)
    )
    (ref_grad,) = torch.autograd.grad(ref, qr)
    np.testing.assert_allclose(got.numpy(), ref_grad.numpy(), rtol=1e-12, atol=1e-15)

    def jax_loss(a: Any) -> Any:
        w = jnp.asarray(weight)
        return xpsoftmax.cross_entropy(jnp.asarray(logits), a, label_smoothing=0.2, weight=w)

    np.testing.assert_allclose(
        np.asarray(jax.grad(jax_loss)(jnp.asarray(q))), ref_grad.numpy(), rtol=1e-12, atol=1e-15
    )


@pytest.mark.parametrize("name", [*REDUCING, "cross_entropy"])
def test_forward_mode_matches_reverse_mode(name: str, logits: np.ndarray) -> None:
    fn = getattr(xpsoftmax, name)
    target = np.array([0, 4, 2])

    def f(x: Any, module: Any) -> Any:
        if name == "cross_entropy":
            return fn(x, module.asarray(target), reduction="none")
        return fn(x, axis=-1)

    x = jnp.asarray(logits)
    forward = jax.jacfwd(lambda a: f(a, jnp))(x)
    reverse = jax.jacrev(lambda a: f(a, jnp))(x)
    np.testing.assert_allclose(np.asarray(forward), np.asarray(reverse), rtol=1e-12, atol=1e-15)
    xt = torch.tensor(logits)
    forward_t = torch.func.jacfwd(lambda a: f(a, torch))(xt)
    reverse_t = torch.func.jacrev(lambda a: f(a, torch))(xt)
    torch.testing.assert_close(forward_t, reverse_t, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(forward_t.numpy(), np.asarray(forward), rtol=1e-12, atol=1e-15)


_TORCH_OWN: dict[str, Callable[[Any], Any]] = {
    "softmax": lambda x: torch.softmax(x, -1),
    "log_softmax": lambda x: torch.log_softmax(x, -1),
    "logsumexp": lambda x: torch.logsumexp(x, -1),
    "cross_entropy": lambda x: F.cross_entropy(x, torch.tensor([0, 4, 2]), label_smoothing=0.1),
}


@pytest.mark.parametrize("name", REDUCING)
def test_gradients_of_a_transposed_view_match_torch(name: str) -> None:
    """Rows not contiguous in memory: the derivative's one write per slice lands in each row of
    our temporaries, which keep the input's layout (a flat view of them would be a copy)."""
    base = np.random.default_rng(5).normal(size=(6, 40)) * 3.0
    weights = torch.tensor(
        np.random.default_rng(6).normal(size=(40, 6) if name != "logsumexp" else 40)
    )
    x = torch.from_numpy(base).T.requires_grad_()  # (40, 6), strided rows
    (ours,) = torch.autograd.grad((getattr(xpsoftmax, name)(x) * weights).sum(), x)
    x_own = torch.tensor(base.T.copy(), requires_grad=True)
    (own,) = torch.autograd.grad((_TORCH_OWN[name](x_own) * weights).sum(), x_own)
    np.testing.assert_allclose(ours.numpy(), own.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", [*REDUCING, "cross_entropy"])
def test_double_backward_matches_torch(name: str, logits: np.ndarray) -> None:
    """Hessian-vector products by double backward, against the same through torch's own op."""
    fn = getattr(xpsoftmax, name)

    def ours(x: Any) -> Any:
        if name == "cross_entropy":
            return fn(x, torch.tensor([0, 4, 2]), label_smoothing=0.1)
        return fn(x, axis=-1)

    v = torch.tensor(np.linspace(-1.0, 1.0, logits.size).reshape(logits.shape))

    def hvp(f: Callable[[Any], Any]) -> np.ndarray:
        x = torch.tensor(logits, requires_grad=True)
        out = f(x)
        weights = torch.tensor(np.linspace(0.5, 1.5, out.numel()).reshape(out.shape))
        (grad,) = torch.autograd.grad((out * weights).sum(), x, create_graph=True)
        (second,) = torch.autograd.grad((grad * v).sum(), x)
        return second.numpy()

    np.testing.assert_allclose(hvp(ours), hvp(_TORCH_OWN[name]), rtol=1e-10, atol=1e-13)
    hessian = torch.func.hessian(lambda a: ours(a).sum())(torch.tensor(logits))
    own = torch.func.hessian(lambda a: _TORCH_OWN[name](a).sum())(torch.tensor(logits))
    torch.testing.assert_close(hessian, own, rtol=1e-10, atol=1e-13)


DOMINANT = np.array([0.0, -40.0])


def test_gradient_at_a_dominant_entry_keeps_relative_accuracy() -> None:
    """d log_softmax_0 / d x_0 at [0, -40] is 4.25e-18 (the oracle's Jacobian), not 0, in
    every mode of both frameworks; likewise softmax's, cross_entropy's and logsumexp's Hessian."""
    exact_log = oracle.to_float(oracle.log_softmax_jacobian(DOMINANT))
    exact_soft = oracle.to_float(oracle.softmax_jacobian(DOMINANT))
    assert 4.2e-18 < exact_log[0, 0] < 4.3e-18
    x_jax, x_torch = jnp.asarray(DOMINANT), torch.tensor(DOMINANT)
    for exact, name in ((exact_log, "log_softmax"), (exact_soft, "softmax")):
        fn = getattr(xpsoftmax, name)
        for jacobian in (jax.jacrev(fn)(x_jax), jax.jacfwd(fn)(x_jax)):
            np.testing.assert_allclose(np.asarray(jacobian), exact, rtol=1e-14)
        for jacobian in (torch.func.jacrev(fn)(x_torch), torch.func.jacfwd(fn)(x_torch)):
            np.testing.assert_allclose(jacobian.numpy(), exact, rtol=1e-14)
        x = torch.tensor(DOMINANT, requires_grad=True)
        (row,) = torch.autograd.grad(fn(x)[0], x)
        np.testing.assert_allclose(row.numpy(), exact[0], rtol=1e-14)
    # cross_entropy with the dominant class as target: d/dx_0 = s_0 - 1 = -4.25e-18.
    target = [0]
    ce_jax = jax.grad(lambda a: xpsoftmax.cross_entropy(a[None], jnp.asarray(target)))(x_jax)
    np.testing.assert_allclose(np.asarray(ce_jax), -exact_log[0], rtol=1e-14)
    x = torch.tensor(DOMINANT, requires_grad=True)
    (ce_torch,) = torch.autograd.grad(xpsoftmax.cross_entropy(x[None], torch.tensor(target)), x)
    np.testing.assert_allclose(ce_torch.numpy(), -exact_log[0], rtol=1e-14)
    hessian = torch.func.hessian(xpsoftmax.logsumexp)(x_torch)
    np.testing.assert_allclose(hessian.numpy(), exact_soft, rtol=1e-14)
    np.testing.assert_allclose(
        np.asarray(jax.hessian(xpsoftmax.logsumexp)(x_jax)), exact_soft, rtol=1e-14
    )


@pytest.mark.parametrize("rows", [16, 1024])  # 1024 x 64: the size where a faster path once began
def test_cross_entropy_gradient_keeps_its_digits_under_a_large_shared_offset(rows: int) -> None:
    """Logits near 1e4 in float32: the gradient is as close to the exact one (float64 PyTorch on
    the same float32 values) as PyTorch's own float32 gradient, to a few ulps. A shift by
    ``m + L`` rounded to the spacing of 1e4 (about 1e-3) would cost it four digits."""
    generator = torch.Generator().manual_seed(3)
    x = (3.0 * torch.randn(rows, 64, generator=generator) + 1e4).requires_grad_()
    target = torch.randint(0, 64, (rows,), generator=generator)
    (ours,) = torch.autograd.grad(xpsoftmax.cross_entropy(x, target), x)
    x64 = x.detach().double().requires_grad_()
    (exact,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x64, target), x64)
    (own,) = torch.autograd.grad(torch.nn.functional.cross_entropy(x, target), x)
    own_error = float(((own.double() - exact).abs() / exact.abs()).max())
    our_error = float(((ours.double() - exact).abs() / exact.abs()).max())
    assert our_error <= max(own_error, 16 * torch.finfo(torch.float32).eps), (our_error, own_error)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_compiled_and_eager_derivatives_agree_at_ties_and_dominant_entries(name: str) -> None:
    """Compiled, the derivative finds each row's top entry by arithmetic (no argmax); eagerly,
    PyTorch's backward takes its argmax. Both centre on a top entry, so they agree to rounding
    on rows with ties, a dominant entry, excluded entries and nothing at all, and keep
    d/dx_0 at the dominant row to relative accuracy."""
    x = np.array(
        [
            [0.0, -40.0, -41.0, -45.0],  # dominant: s_0 = 1 - 4.6e-18
            [2.0, 2.0, 1.0, 2.0],  # a three-way tie at the maximum
            [1.0, 3.0, 3.0, 0.0],  # a tie, then masked below
            [5.0, 1.0, 2.0, 3.0],  # nothing included
        ]
    )
    where = np.ones_like(x, dtype=bool)
    where[2, 1] = False
    where[3] = False
    g = np.array([[1.0, -2.0, 0.5, 3.0]] * 4) * np.arange(1, 5)[:, None]

    def jax_vjp(a: Any, cot: Any) -> Any:
        fn = partial(getattr(xpsoftmax, name), where=jnp.asarray(where))
        return jax.vjp(fn, a)[1](cot)[0]

    compiled = np.asarray(jax.jit(jax_vjp)(jnp.asarray(x), jnp.asarray(g)))
    x_torch = torch.tensor(x, requires_grad=True)
    out = getattr(xpsoftmax, name)(x_torch, where=torch.tensor(where))
    (eager,) = torch.autograd.grad(out, x_torch, torch.tensor(g))
    np.testing.assert_allclose(compiled, eager.numpy(), rtol=1e-13, atol=1e-15)
    exact = oracle.to_float(getattr(oracle, f"{name}_vjp")(x[:1], g[:1], where=where[:1]))
    np.testing.assert_allclose(compiled[:1], exact, rtol=1e-13)
    assert np.all(compiled[3] == 0.0)


def test_masked_rows_give_finite_zero_gradients(rng: np.random.Generator) -> None:
    """Excluded entries and fully excluded rows get exactly zero gradient in both frameworks,
    as the closed-form VJP says."""
    x = rng.normal(size=(4, 6))
    where = rng.random((4, 6)) < 0.6
    where[0] = False
    g = rng.normal(size=(4, 6))
    for name in ("softmax", "log_softmax"):
        fn = getattr(xpsoftmax, name)
        closed = getattr(xpsoftmax, f"{name}_vjp")(x, g, where=where)
        _, pullback = jax.vjp(partial(fn, where=jnp.asarray(where)), jnp.asarray(x))
        (grad_jax,) = pullback(jnp.asarray(g))
        xt = torch.tensor(x, requires_grad=True)
        (grad_torch,) = torch.autograd.grad(fn(xt, where=torch.tensor(where)), xt, torch.tensor(g))
        for grad in (np.asarray(grad_jax), grad_torch.numpy()):
            assert np.all(grad[~where] == 0.0)
            np.testing.assert_allclose(grad, closed, rtol=1e-12, atol=1e-15)


# -- memory saved for the backward pass ----------------------------------------------------------


training = load_module("asv_training", ROOT / "asv_bench" / "benchmarks" / "training.py")
_torch_saved_bytes = training.torch_saved_bytes


def _jax_residual_bytes(fn: Callable[[Any], Any], x: Any, full_size: int) -> int:
    """Residual bytes of arrays with one value per input entry (per-row values aside)."""
    return training.jax_residual_bytes(fn, x, min_size=full_size)  # type: ignore[no-any-return]


def test_saved_memory_is_no_more_than_the_frameworks_own(rng: np.random.Generator) -> None:
    x64 = rng.normal(size=(16, 300)).astype(np.float32)
    target = rng.integers(0, 300, size=16)
    mask = rng.random((16, 300)) < 0.8
    x = torch.tensor(x64, requires_grad=True)
    t, m = torch.tensor(target), torch.tensor(mask)
    pairs = {
        "softmax": (lambda: xpsoftmax.softmax(x), lambda: torch.softmax(x, -1)),
        "log_softmax": (lambda: xpsoftmax.log_softmax(x), lambda: torch.log_softmax(x, -1)),
        "logsumexp": (lambda: xpsoftmax.logsumexp(x), lambda: torch.logsumexp(x, -1)),
        "cross_entropy": (lambda: xpsoftmax.cross_entropy(x, t), lambda: F.cross_entropy(x, t)),
        "masked softmax": (
            lambda: xpsoftmax.softmax(x, where=m),
            lambda: torch.softmax(x.masked_fill(~m, -torch.inf), -1),
        ),
    }
    for name, (ours, own) in pairs.items():
        assert _torch_saved_bytes(ours) <= _torch_saved_bytes(own), name
    optax = pytest.importorskip("optax")
    xj, tj, mj = jnp.asarray(x64), jnp.asarray(target), jnp.asarray(mask)
    jax_pairs = {
        "softmax": (xpsoftmax.softmax, jax.nn.softmax),
        "log_softmax": (xpsoftmax.log_softmax, jax.nn.log_softmax),
        "logsumexp": (xpsoftmax.logsumexp, lambda a: jax.nn.logsumexp(a, axis=-1)),
        "cross_entropy": (
            lambda a: xpsoftmax.cross_entropy(a, tj),
            lambda a: optax.softmax_cross_entropy_with_integer_labels(a, tj).mean(),
        ),
        "masked softmax": (
            lambda a: xpsoftmax.softmax(a, where=mj),
            lambda a: jax.nn.softmax(a, where=mj),
        ),
    }
    for name, (ours, own) in jax_pairs.items():
        ours_bytes = _jax_residual_bytes(ours, xj, x64.size)
        assert 0 < ours_bytes <= _jax_residual_bytes(own, xj, x64.size), name


def test_calls_nobody_differentiates_take_the_plain_path() -> None:
    """No autograd node where nothing requires grad, or under no_grad: the machinery costs
    nothing there (and the result is the same)."""
    x = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    with torch.no_grad():
        plain = xpsoftmax.softmax(x)
    assert plain.grad_fn is None
    assert xpsoftmax.softmax(x.detach()).grad_fn is None
    attached = xpsoftmax.softmax(x)
    assert attached.grad_fn is not None
    torch.testing.assert_close(attached.detach(), torch.softmax(x.detach(), -1), rtol=1e-6, atol=0)


def test_torch_compile_trains_without_graph_breaks(rng: np.random.Generator) -> None:
    """Forward and backward of a compiled loss (fullgraph: a break is an error), against eager
    torch's own cross-entropy."""
    torch._dynamo.reset()
    x64 = rng.normal(size=(8, 10))
    target = torch.tensor(rng.integers(0, 10, size=8))
    where = torch.tensor(rng.random((8, 10)) < 0.8) | torch.eye(10, dtype=torch.bool)[target]

    @torch.compile(fullgraph=True)
    def step(x: Any) -> Any:
        loss = xpsoftmax.cross_entropy(x, target, label_smoothing=0.1)
        return loss + xpsoftmax.log_softmax(x, where=where).exp().sum() * 0.0

    x = torch.tensor(x64, requires_grad=True)
    step(x).backward()
    ref_x = torch.tensor(x64, requires_grad=True)
    F.cross_entropy(ref_x, target, label_smoothing=0.1).backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-10, atol=1e-13)


def test_jax_hessian_and_vmap_of_grad(logits: np.ndarray) -> None:
    x = jnp.asarray(logits)
    target = jnp.asarray([0, 4, 2])
    ours = jax.hessian(lambda a: xpsoftmax.cross_entropy(a, target))(x)
    optax = pytest.importorskip("optax")
    own = jax.hessian(lambda a: optax.softmax_cross_entropy_with_integer_labels(a, target).mean())(
        x
    )
    np.testing.assert_allclose(np.asarray(ours), np.asarray(own), rtol=1e-10, atol=1e-14)
    per_row = jax.vmap(jax.grad(lambda a: xpsoftmax.logsumexp(a, temperature=0.5)))(x)
    np.testing.assert_allclose(
        np.asarray(per_row), oracle.to_float(oracle.softmax(logits, -1, 0.5)), rtol=1e-13
    )
