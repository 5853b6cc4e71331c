"""Every public function under every transform PyTorch and JAX offer: one table, one test.

`ROWS` holds one line per public function (or per option of one that changes its derivative
rule): the call, written once for any framework, and an independent float64 NumPy/SciPy
reference of the same value. `TORCH` and `JAX` hold one line per transform. Each cell runs the
transform on our function and compares with the framework-free reference: the forward value for
forward transforms, and central finite differences of the reference for derivative transforms
(JAX's ``check_grads`` is its own finite-difference check). Adding a function or a transform is
one line; a cell that cannot work is an entry of `XFAIL`, with its reason, and is listed on the
Frameworks page of the docs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import scipy.special as sp
from scipy.optimize import brentq

import xpsoftmax as xps

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
jax_test_util = pytest.importorskip("jax.test_util")
# float64 on JAX, as the rest of the suite has it (see xpsoftmax.backends' JAX adapter).
jax.config.update("jax_enable_x64", True)

Array = Any
# A row's call: (differentiated input, converter of NumPy constants into its framework).
Call = Callable[[Array, Callable[[np.ndarray], Array]], Array]

RNG = np.random.default_rng(19)
X = RNG.standard_normal((2, 3))  # two slices of three classes, along the last axis
B = np.array([2.0, -0.1, 1.0])  # logsumexp weights: signed, with a positive sum
MASK = np.array([[True, False, True], [True] * 3])
T = np.array([[0.7], [2.5]])  # one temperature per slice
V = RNG.standard_normal((2, 3))  # a tangent or cotangent for the product functions
P = sp.softmax(RNG.standard_normal((2, 3)), axis=-1)  # probability targets
LABELS = np.array([2, 1])
CLASS_WEIGHT = np.array([0.5, 1.0, 2.0])
IGNORED = 1  # ignore_index: the second sample adds nothing
W = RNG.standard_normal((4, 3))  # linear_cross_entropy's weight: V = 4 classes of D = 3
BIAS = np.array([0.1, -0.2, 0.0, 0.3])
SOFTCAP, Z_LOSS = 2.0, 0.01


class Row(NamedTuple):
    call: Call
    reference: Callable[[np.ndarray], np.ndarray]
    input: np.ndarray = X  # the differentiated argument's value


def _ce_indices(x: np.ndarray, labels: np.ndarray, weight: np.ndarray, ignore: int) -> Any:
    lse = sp.logsumexp(x, axis=-1)
    picked = np.take_along_axis(x, labels[:, None], axis=-1)[:, 0]
    w = np.where(labels == ignore, 0.0, weight[labels])
    return np.sum(w * (lse - picked)) / np.sum(w)


def _ce_probabilities(x: np.ndarray, q: np.ndarray) -> Any:
    return np.mean(-np.sum(q * sp.log_softmax(x, axis=-1), axis=-1))


def _fitted_temperature(x: np.ndarray) -> np.ndarray:
    """The root of the loss's derivative in beta = 1/T, ``mean(E_softmax(beta x)[x] - x_label)``.

    A root, not a minimum: a minimiser finds the argument only to sqrt(eps) (the loss is flat
    there), and finite differences of the reference would amplify that into the derivatives.
    """
    picked = np.take_along_axis(x, LABELS[:, None], axis=-1)[:, 0]

    def slope(beta: float) -> float:
        return float(np.mean(np.sum(sp.softmax(beta * x, axis=-1) * x, axis=-1) - picked))

    return np.asarray(1.0 / brentq(slope, 1e-3, 1e3, xtol=1e-300, rtol=4 * np.finfo(float).eps))


def _linear_ce(h: np.ndarray, w: np.ndarray, extras: bool) -> Any:
    """Mean cross-entropy of the logits ``h @ w.T`` (with BIAS, SOFTCAP and Z_LOSS if `extras`)."""
    z = h @ w.T
    if extras:
        z = SOFTCAP * np.tanh((z + BIAS) / SOFTCAP)
    lse = sp.logsumexp(z, axis=-1)
    loss = lse - np.take_along_axis(z, LABELS[:, None], axis=-1)[:, 0]
    return np.mean(loss + (Z_LOSS * lse**2 if extras else 0.0))


def _softmax_jacobian(x: np.ndarray) -> np.ndarray:
    s = sp.softmax(x, axis=-1)
    return s[..., :, None] * (np.eye(x.shape[-1]) - s[..., None, :])


def _log_softmax_jacobian(x: np.ndarray) -> np.ndarray:
    s = sp.softmax(x, axis=-1)
    return np.eye(x.shape[-1]) - s[..., None, :]


# One line per row.
def _product_row(function: str, jacobian: Callable[[np.ndarray], np.ndarray]) -> Row:
    """The row of a product with V: ``J V`` for a JVP, ``V^T J`` for a VJP, from the matrix."""
    ours = getattr(xps, function)
    subscripts = "...i,...ij->...j" if function.endswith("vjp") else "...j,...ij->...i"
    return Row(lambda x, c: ours(x, c(V)), lambda x: np.einsum(subscripts, V, jacobian(x)))


ROWS: dict[str, Row] = {
    "softmax": Row(lambda x, c: xps.softmax(x), lambda x: sp.softmax(x, axis=-1)),
    "log_softmax": Row(lambda x, c: xps.log_softmax(x), lambda x: sp.log_softmax(x, axis=-1)),
    "logsumexp": Row(lambda x, c: xps.logsumexp(x), lambda x: sp.logsumexp(x, axis=-1)),
    "logsumexp_b": Row(
        lambda x, c: xps.logsumexp(x, b=c(np.abs(B))),
        lambda x: sp.logsumexp(x, b=np.abs(B), axis=-1),
    ),
    "logsumexp_return_sign": Row(
        lambda x, c: xps.logsumexp(x, b=c(B), return_sign=True)[0],
        lambda x: sp.logsumexp(x, b=B, axis=-1, return_sign=True)[0],
    ),
    "logsumexp_where": Row(
        lambda x, c: xps.logsumexp(x, where=c(MASK)),
        lambda x: sp.logsumexp(np.where(MASK, x, -np.inf), axis=-1),
    ),
    "softmax_where": Row(
        lambda x, c: xps.softmax(x, where=c(MASK)),
        lambda x: sp.softmax(np.where(MASK, x, -np.inf), axis=-1),
    ),
    "log_softmax_temperature_array": Row(
        lambda x, c: xps.log_softmax(x, temperature=c(T)),
        lambda x: sp.log_softmax(x / T, axis=-1),
    ),
    "softmax_d_temperature": Row(
        lambda t, c: xps.softmax(c(X), temperature=t),
        lambda t: sp.softmax(X / t, axis=-1),
        T,
    ),
    "logsumexp_d_temperature": Row(
        lambda t, c: xps.logsumexp(c(X), temperature=t, keepdims=True),
        lambda t: t * sp.logsumexp(X / t, axis=-1, keepdims=True),
        T,
    ),
    "softmax_jacobian": Row(lambda x, c: xps.softmax_jacobian(x), _softmax_jacobian),
    "log_softmax_jacobian": Row(lambda x, c: xps.log_softmax_jacobian(x), _log_softmax_jacobian),
    "softmax_jvp": _product_row("softmax_jvp", _softmax_jacobian),
    "softmax_vjp": _product_row("softmax_vjp", _softmax_jacobian),
    "log_softmax_jvp": _product_row("log_softmax_jvp", _log_softmax_jacobian),
    "log_softmax_vjp": _product_row("log_softmax_vjp", _log_softmax_jacobian),
    "cross_entropy_indices_weight_ignore": Row(
        lambda x, c: xps.cross_entropy(x, c(LABELS), weight=c(CLASS_WEIGHT), ignore_index=IGNORED),
        lambda x: _ce_indices(x, LABELS, CLASS_WEIGHT, IGNORED),
    ),
    "cross_entropy_probabilities": Row(
        lambda x, c: xps.cross_entropy(x, c(P)), lambda x: _ce_probabilities(x, P)
    ),
    "cross_entropy_d_probabilities": Row(
        lambda q, c: xps.cross_entropy(c(X), q), lambda q: _ce_probabilities(X, q), P
    ),
    "cross_entropy_smoothing": Row(
        lambda x, c: xps.cross_entropy(x, c(LABELS), label_smoothing=0.1),
        lambda x: _ce_probabilities(x, 0.9 * np.eye(3)[LABELS] + 0.1 / 3),
    ),
    "fit_temperature": Row(lambda x, c: xps.fit_temperature(x, c(LABELS)), _fitted_temperature),
    "linear_cross_entropy_d_hidden": Row(
        lambda h, c: xps.linear_cross_entropy(
            h, c(W), c(LABELS), linear_bias=c(BIAS), softcap=SOFTCAP, z_loss=Z_LOSS
        ),
        lambda h: _linear_ce(h, W, extras=True),
    ),
    "linear_cross_entropy_d_weight": Row(
        lambda w, c: xps.linear_cross_entropy(c(X), w, c(LABELS)),
        lambda w: _linear_ce(X, w, extras=False),
        W,
    ),
}


# -- references for the derivative transforms: central differences of the reference ---------------

H = 1e-5  # first differences; second ones use HH (their error is h^2, their rounding eps / h^2)
HH = 1e-3


def _weights(row: Row) -> np.ndarray:
    """Fixed weights that make a row's output a scalar, ``sum(weights * output)``, for grad."""
    shape = np.shape(row.reference(row.input))
    return np.random.default_rng(abs(hash(shape)) % 2**32).standard_normal(shape)


def _scalar(row: Row) -> Callable[[np.ndarray], float]:
    w = _weights(row)
    return lambda x: float(np.sum(w * row.reference(x)))


def fd_jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """d f / d x, shaped ``f(x).shape + x.shape``."""
    columns = []
    for i in range(x.size):
        step = np.zeros(x.size)
        step[i] = H
        step = step.reshape(x.shape)
        columns.append((np.asarray(f(x + step)) - np.asarray(f(x - step))) / (2 * H))
    return np.moveaxis(np.array(columns), 0, -1).reshape(np.shape(f(x)) + x.shape)


def fd_gradient(row: Row, x: np.ndarray) -> np.ndarray:
    return fd_jacobian(_scalar(row), x)


def fd_hessian(row: Row, x: np.ndarray) -> np.ndarray:
    f, n = _scalar(row), x.size
    steps = np.eye(n).reshape((n, *x.shape)) * HH
    h = np.empty((n, n))
    for i, j in itertools.product(range(n), repeat=2):
        a, b = steps[i], steps[j]
        h[i, j] = (f(x + a + b) - f(x + a - b) - f(x - a + b) + f(x - a - b)) / (4 * HH**2)
    return h.reshape(x.shape + x.shape)


def batched(row: Row) -> np.ndarray:
    """Two inputs stacked on a new leading axis, for the vmap transforms."""
    return np.stack([row.input, row.input * 0.75 + 0.1])


# -- PyTorch's transforms ------------------------------------------------------------------------


def _t(a: np.ndarray) -> Any:
    return torch.asarray(a)


def _torch_scalar(row: Row) -> Callable[[Any], Any]:
    w = _t(_weights(row))
    return lambda x: torch.sum(w * row.call(x, _t))


def _torch_backward(row: Row) -> tuple[Any, Any]:
    x = _t(row.input).requires_grad_(True)
    _torch_scalar(row)(x).backward()
    return x.grad, fd_gradient(row, row.input)


def _tangent(row: Row) -> np.ndarray:
    return np.linspace(-1.0, 1.5, row.input.size).reshape(row.input.shape)


def _torch_double_backward(row: Row) -> tuple[Any, Any]:
    x, v = _t(row.input).requires_grad_(True), _tangent(row)
    (g,) = torch.autograd.grad(_torch_scalar(row)(x), x, create_graph=True)
    hv = torch.sum(g * _t(v))  # its gradient is the Hessian times v
    # A gradient that does not depend on x (a loss linear in x) has no graph: autograd's
    # way of saying that the second derivative is zero, which the differences must confirm.
    got = torch.autograd.grad(hv, x)[0] if hv.requires_grad else torch.zeros_like(x)
    n = row.input.size
    return got, (fd_hessian(row, row.input).reshape(n, n) @ v.reshape(n)).reshape(v.shape)


def _torch_forward_ad(row: Row) -> tuple[Any, Any]:
    import torch.autograd.forward_ad as fwad

    tangent = _tangent(row)
    with fwad.dual_level():
        out = row.call(fwad.make_dual(_t(row.input), _t(tangent)), _t)
        got = fwad.unpack_dual(out).tangent
    jac = fd_jacobian(row.reference, row.input)
    return got, np.tensordot(jac, tangent, axes=row.input.ndim)


def _torch_vmap(row: Row) -> tuple[Any, Any]:
    xs = batched(row)
    got = torch.func.vmap(lambda x: row.call(x, _t))(_t(xs))
    return got, np.stack([row.reference(x) for x in xs])


def _torch_vmap_grad(row: Row) -> tuple[Any, Any]:
    xs = batched(row)
    got = torch.func.vmap(torch.func.grad(_torch_scalar(row)))(_t(xs))
    return got, np.stack([fd_gradient(row, x) for x in xs])


def _torch_compiled(row: Row) -> tuple[Any, Any]:
    """The forward value and the gradient of one compilation (each compilation costs seconds)."""
    # Every row compiles the same lambda's code object: without a reset, Dynamo counts each
    # row as a recompilation of it and, past its limit, fails under fullgraph.
    torch._dynamo.reset()
    x = _t(row.input).requires_grad_(True)
    value = torch.compile(_torch_scalar(row), fullgraph=True)(x)
    value.backward()
    return (value.detach(), x.grad), (_scalar(row)(row.input), fd_gradient(row, row.input))


TORCH: dict[str, Callable[[Row], tuple[Any, Any]]] = {
    "backward": _torch_backward,
    "double_backward": _torch_double_backward,
    "func.grad": lambda r: (
        torch.func.grad(_torch_scalar(r))(_t(r.input)),
        fd_gradient(r, r.input),
    ),
    "func.vmap": _torch_vmap,
    "func.vmap(grad)": _torch_vmap_grad,
    "func.jacfwd": lambda r: (
        torch.func.jacfwd(lambda x: r.call(x, _t))(_t(r.input)),
        fd_jacobian(r.reference, r.input),
    ),
    "func.jacrev": lambda r: (
        torch.func.jacrev(lambda x: r.call(x, _t))(_t(r.input)),
        fd_jacobian(r.reference, r.input),
    ),
    "func.hessian": lambda r: (
        torch.func.hessian(_torch_scalar(r))(_t(r.input)),
        fd_hessian(r, r.input),
    ),
    "forward_ad": _torch_forward_ad,
    "compile(fullgraph) forward+backward": _torch_compiled,
}


# -- JAX's transforms ----------------------------------------------------------------------------


def _j(a: np.ndarray) -> Any:
    return jnp.asarray(a)


def _jax_scalar(row: Row) -> Callable[[Any], Any]:
    w = _weights(row)
    return lambda x: jnp.sum(_j(w) * row.call(x, _j))


def _check_grads(mode: str) -> Callable[[Row], tuple[Any, Any]]:
    def run(row: Row) -> tuple[Any, Any]:
        # JAX's own check: finite differences along random NumPy tangents and cotangents.
        # (It evaluates f at NumPy points too: the constants' library follows the input's.)
        def f(x: Any) -> Any:
            return row.call(_j(x), _j)

        jax_test_util.check_grads(f, (_j(row.input),), order=2, modes=[mode], eps=1e-4)
        return 0.0, 0.0

    return run


def _jax_vmap(row: Row) -> tuple[Any, Any]:
    xs = batched(row)
    got = jax.vmap(lambda x: row.call(x, _j))(_j(xs))
    return got, np.stack([row.reference(x) for x in xs])


# The derivative columns run under jit: the same transforms, compiled once, where eagerly each
# of the hundreds of small operations in a Jacobian row is a dispatch of its own (seconds a
# cell). `vmap` and check_grads stay eager: check_grads hands the rules NumPy tangents and
# cotangents beside JAX's tracers, which a jit boundary would turn into tracers first.
JAX: dict[str, Callable[[Row], tuple[Any, Any]]] = {
    "jit": lambda r: (jax.jit(lambda x: r.call(x, _j))(_j(r.input)), r.reference(r.input)),
    "jit(grad)": lambda r: (
        jax.jit(jax.grad(_jax_scalar(r)))(_j(r.input)),
        fd_gradient(r, r.input),
    ),
    "vmap": _jax_vmap,
    "jit(jacfwd)": lambda r: (
        jax.jit(jax.jacfwd(lambda x: r.call(x, _j)))(_j(r.input)),
        fd_jacobian(r.reference, r.input),
    ),
    "jit(jacrev)": lambda r: (
        jax.jit(jax.jacrev(lambda x: r.call(x, _j)))(_j(r.input)),
        fd_jacobian(r.reference, r.input),
    ),
    "jit(hessian)": lambda r: (
        jax.jit(jax.hessian(_jax_scalar(r)))(_j(r.input)),
        fd_hessian(r, r.input),
    ),
    "check_grads(order=2, fwd)": _check_grads("fwd"),
    "check_grads(order=2, rev)": _check_grads("rev"),
    "jit(vmap(grad))": lambda r: (
        jax.jit(jax.vmap(jax.grad(_jax_scalar(r))))(_j(batched(r))),
        np.stack([fd_gradient(r, x) for x in batched(r)]),
    ),
}


# -- the cells that cannot work, each with its reason (listed on docs/frameworks.rst) -------------

XFAIL: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module", autouse=True)
def _eager_torch_call_first() -> None:
    """One eager torch call before any compiled one in this process.

    With torch imported after xpsoftmax, a first call that is compiled makes Dynamo trace
    array-api-compat's lru_cache helpers, and it warns (a known limitation, pinned by
    tests/test_quiet_compile.py); pytest would turn those warnings into errors here.
    """
    xps.softmax(torch.zeros(2, 3))


def _cells() -> list[Any]:
    cells = []
    for (framework, transforms), name in itertools.product((("torch", TORCH), ("jax", JAX)), ROWS):
        for transform in transforms:
            reason = XFAIL.get((name, f"{framework}:{transform}"))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cells.append(
                pytest.param(
                    framework, transform, name, id=f"{framework}:{transform}-{name}", marks=marks
                )
            )
    return cells


@pytest.mark.parametrize(("framework", "transform", "name"), _cells())
def test_transform(framework: str, transform: str, name: str) -> None:
    row = ROWS[name]
    run = (TORCH if framework == "torch" else JAX)[transform]
    got, expected = run(row)
    for g, e in zip(_pairs(got), _pairs(expected), strict=True):
        np.testing.assert_allclose(_numpy(g), e, rtol=2e-5, atol=2e-6)


def _pairs(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _numpy(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().numpy()
    return np.asarray(a)
