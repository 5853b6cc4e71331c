"""linear_cross_entropy's paths (spec: Linear cross-entropy): gradients in the forward pass for
a loss reduced to a scalar, and tokens that add nothing left out of eager calls.

Every value is checked against PyTorch's own ``F.cross_entropy`` of the materialised logits, in
float64: the gradients of each subset of the inputs that records them, under an incoming
cotangent other than 1, a graph kept and differentiated twice, plain evaluation under
``no_grad`` and ``inference_mode``, forward mode; and ignored tokens whose hidden states are
NaN, which only a path that never reads them can give finite results for.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

import xpsoftmax
from xpsoftmax import backends

torch = pytest.importorskip("torch")
F = torch.nn.functional
T = torch.tensor

N, D, V = 23, 5, 13


def _arrays(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(N, D)),
        rng.normal(size=(V, D)),
        rng.normal(size=V),
        rng.integers(0, V, size=N),
    )


def _assert_close(got: Any, expected: Any, rtol: float = 1e-10) -> None:
    got, expected = (np.asarray(a.detach() if hasattr(a, "detach") else a) for a in (got, expected))
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("watched", list(itertools.product([False, True], repeat=3))[1:])
def test_gradients_of_each_subset_of_inputs(reduction: str, watched: tuple[bool, ...]) -> None:
    """Only the inputs that require gradients get them, and they are the materialised
    loss's, under a cotangent of 3 (not the 1 the kept gradients are handed on for)."""
    h, w, b, y = _arrays()
    ours = [T(a, requires_grad=r) for a, r in zip((h, w, b), watched, strict=True)]
    theirs = [T(a, requires_grad=r) for a, r in zip((h, w, b), watched, strict=True)]
    loss = xpsoftmax.linear_cross_entropy(
        ours[0], ours[1], T(y), linear_bias=ours[2], reduction=reduction, chunk_size=4
    )
    expected = F.cross_entropy(theirs[0] @ theirs[1].T + theirs[2], T(y), reduction=reduction)
    _assert_close(loss, expected)
    wanted = [a for a in ours if a.requires_grad]
    got = torch.autograd.grad(3.0 * loss, wanted)
    want = torch.autograd.grad(3.0 * expected, [a for a in theirs if a.requires_grad])
    for g, e in zip(got, want, strict=True):
        _assert_close(g, e)


def test_graph_kept_and_differentiated_twice() -> None:
    """With ``retain_graph``, a second backward pass gives the same gradients: the first
    handed on the gradients the forward pass kept, and left them as they were."""
    h, w, _, y = _arrays(1)
    leaves = [T(a, requires_grad=True) for a in (h, w)]
    loss = xpsoftmax.linear_cross_entropy(*leaves, T(y), chunk_size=5)
    first = [g.clone() for g in torch.autograd.grad(loss, leaves, retain_graph=True)]
    second = torch.autograd.grad(loss, leaves)
    exact = [T(a, requires_grad=True) for a in (h, w)]
    expected = torch.autograd.grad(F.cross_entropy(exact[0] @ exact[1].T, T(y)), exact)
    for a, b, e in zip(first, second, expected, strict=True):
        _assert_close(a, e)
        _assert_close(b, e)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_plain_evaluation(mode: str) -> None:
    h, w, b, y = _arrays(2)
    leaves = [T(a, requires_grad=True) for a in (h, w, b)]
    with getattr(torch, mode)():
        got = xpsoftmax.linear_cross_entropy(*leaves[:2], T(y), linear_bias=leaves[2])
    assert not got.requires_grad
    _assert_close(got, F.cross_entropy(T(h) @ T(w).T + T(b), T(y)))


def test_forward_mode_of_the_mean() -> None:
    import torch.autograd.forward_ad as fwad

    h, w, _, y = _arrays(3)
    tangent = np.linspace(-1.0, 1.0, N * D).reshape(N, D)
    with fwad.dual_level():
        got = fwad.unpack_dual(
            xpsoftmax.linear_cross_entropy(fwad.make_dual(T(h), T(tangent)), T(w), T(y))
        ).tangent
        want = fwad.unpack_dual(
            F.cross_entropy(fwad.make_dual(T(h), T(tangent)) @ T(w).T, T(y))
        ).tangent
    _assert_close(got, want)


def _poisoned(ignored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """hidden with NaN rows where `ignored`, the clean hidden, and the weight."""
    h, w, _, _ = _arrays(4)
    poisoned = h.copy()
    poisoned[ignored] = np.nan
    return poisoned, h, w


IGNORED = np.arange(N) % 3 == 1


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ignored_tokens_are_never_read_on_eager_arrays(reduction: str) -> None:
    """NaN hidden states at ignored tokens: the loss and every gradient are those of the
    other tokens alone (the materialised loss of the clean rows), with zero gradients at the
    ignored rows."""
    poisoned, h, w = _poisoned(IGNORED)
    y = _arrays(4)[3]
    y_ignored = np.where(IGNORED, -100, y)
    leaves = [T(poisoned, requires_grad=True), T(w, requires_grad=True)]
    loss = xpsoftmax.linear_cross_entropy(
        *leaves, T(y_ignored), ignore_index=-100, reduction=reduction, chunk_size=4
    )
    kept = [T(h[~IGNORED], requires_grad=True), T(w, requires_grad=True)]
    expected = F.cross_entropy(kept[0] @ kept[1].T, T(y[~IGNORED]), reduction=reduction)
    if reduction == "none":
        _assert_close(loss[~T(IGNORED)], expected)
        assert np.all(loss.detach().numpy()[IGNORED] == 0.0)
        seed = torch.linspace(0.5, 1.5, N)
        got = torch.autograd.grad(loss, leaves, seed)
        want = torch.autograd.grad(expected, kept, seed[~T(IGNORED)])
    else:
        _assert_close(loss, expected)
        got = torch.autograd.grad(loss, leaves)
        want = torch.autograd.grad(expected, kept)
    _assert_close(got[0][~T(IGNORED)], want[0])
    assert np.all(got[0].numpy()[IGNORED] == 0.0)
    _assert_close(got[1], want[1])


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "jax", "torch"])
def test_vjp_leaves_ignored_and_weightless_tokens_out(name: str) -> None:
    """linear_cross_entropy_vjp on eager arrays of each library: NaN hidden states at
    ignored tokens and at tokens whose class weight is 0 are never read."""
    backend = backends.get(name)
    poisoned, h, w = _poisoned(IGNORED)
    y = _arrays(4)[3]
    weight = np.ones(V)
    weight[y[2]] = 0.0  # the third token's class: it adds nothing
    dropped = IGNORED | (weight[y] == 0.0)
    poisoned[dropped] = np.nan
    y_ignored = np.where(IGNORED, -100, y)
    arrays = [backend.asarray(a) for a in (poisoned, w, y_ignored, weight)]
    loss, d_h, d_w, _ = xpsoftmax.linear_cross_entropy_vjp(
        *arrays[:3], backend.asarray(np.array(2.0)), weight=arrays[3], ignore_index=-100
    )
    kept = [T(h[~dropped], requires_grad=True), T(w, requires_grad=True)]
    expected = (
        F.cross_entropy(kept[0] @ kept[1].T, T(y[~dropped]), weight=T(weight), reduction="sum")
        / weight[y[~IGNORED]].sum()
    )
    grads = torch.autograd.grad(2.0 * expected, kept)
    _assert_close(backend.to_numpy(loss), expected)
    d_h = backend.to_numpy(d_h)
    _assert_close(d_h[~dropped], grads[0])
    assert np.all(d_h[dropped] == 0.0)
    _assert_close(backend.to_numpy(d_w), grads[1])


def test_weightless_tokens_stay_where_the_z_loss_gives_them_a_loss() -> None:
    """A class weight of 0 leaves the z-loss's term: such tokens are not left out."""
    h, w, _, y = _arrays(5)
    weight = np.ones(V)
    weight[y[0]] = 0.0
    leaves = [T(a, requires_grad=True) for a in (h, w)]
    got = xpsoftmax.linear_cross_entropy(*leaves, T(y), weight=T(weight), z_loss=0.1)
    exact = [T(a, requires_grad=True) for a in (h, w)]
    z = exact[0] @ exact[1].T
    per_token = F.cross_entropy(z, T(y), weight=T(weight), reduction="none")
    per_token = per_token + 0.1 * torch.logsumexp(z, dim=-1) ** 2
    expected = per_token.sum() / T(weight)[T(y)].sum()
    _assert_close(got, expected)
    got_grads = torch.autograd.grad(got, leaves)
    for a, b in zip(got_grads, torch.autograd.grad(expected, exact), strict=True):
        _assert_close(a, b)


def test_traced_calls_keep_the_masked_path() -> None:
    """Under jax.jit the targets are traced: the ignored tokens stay, masked, and the loss
    and gradients are the materialised loss's."""
    jax = pytest.importorskip("jax")
    backend = backends.get("jax")
    h, w, _, y = _arrays(6)
    y_ignored = np.where(IGNORED, -100, y)

    def loss(a: Any, b: Any, t: Any) -> Any:
        return xpsoftmax.linear_cross_entropy(a, b, t, ignore_index=-100, chunk_size=4)

    arrays = [backend.asarray(a) for a in (h, w, y_ignored)]
    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(*arrays)
    exact = [T(a, requires_grad=True) for a in (h, w)]
    expected = F.cross_entropy(exact[0] @ exact[1].T, T(y_ignored), ignore_index=-100)
    _assert_close(backend.to_numpy(value), expected)
    for a, b in zip(grads, torch.autograd.grad(expected, exact), strict=True):
        _assert_close(backend.to_numpy(a), b)


def _filtering_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A head whose probabilities fall off with the class index (a frequency prior through
    the first feature, as a vocabulary ordered by frequency has): most tiles of classes hold
    only small probabilities."""
    rng = np.random.default_rng(7)
    n, d, v = 90, 6, 1500
    h = rng.normal(size=(n, d))
    h[:, 0] = 1.0
    w = rng.normal(size=(v, d)) * 0.5
    w[:, 0] = -1.5 * np.log(np.arange(1, v + 1))
    y = np.minimum(rng.zipf(1.3, size=n) - 1, v - 1)
    return h, w, y


def _filtering_bounds(h: np.ndarray, w: np.ndarray, eps: float) -> tuple[np.ndarray, ...]:
    """What the skipped entries (each |p - y| < eps, for tokens of weight 1/N) can change:
    at most eps/N times the sum of |W| over the classes, per entry of the hidden gradient,
    and eps/N times the sum of |h| over the tokens, per entry of the weight gradient."""
    n = h.shape[0]
    return (
        np.broadcast_to(eps / n * np.abs(w).sum(axis=0), h.shape),
        np.broadcast_to(eps / n * np.abs(h).sum(axis=0), w.shape),
    )


@pytest.mark.parametrize("name", ["torch", "numpy", "jax"])
def test_gradient_filtering_within_its_bound(name: str) -> None:
    """filter_eps: the loss stays exact, the gradients move by no more than the skipped
    entries allow, and something is skipped (the gradients differ from the exact ones); with
    filter_eps 0 nothing is. PyTorch autograd and the VJP on NumPy read the tiles kept
    eagerly; JAX's jit(grad) takes them through lax.cond."""
    h, w, y = _filtering_case()
    exact = [T(a, requires_grad=True) for a in (h, w)]
    expected = F.cross_entropy(exact[0] @ exact[1].T, T(y))
    exact_grads = [g.numpy() for g in torch.autograd.grad(expected, exact)]
    for eps in (0.0, 2e-3):
        loss, grads = _filtered(name, h, w, y, eps)
        _assert_close(loss, expected)
        errors = [np.abs(g - e) for g, e in zip(grads, exact_grads, strict=True)]
        if eps == 0.0:
            for error, e in zip(errors, exact_grads, strict=True):
                assert np.max(error) <= 1e-12 * np.max(np.abs(e))
            continue
        assert max(np.max(e) for e in errors) > 1e-9  # tiles were skipped
        for error, bound in zip(errors, _filtering_bounds(h, w, eps), strict=True):
            assert np.all(error <= bound * (1 + 1e-9) + 1e-15)


def _filtered(name: str, h: Any, w: Any, y: Any, eps: float) -> tuple[Any, list[np.ndarray]]:
    if name == "torch":
        leaves = [T(a, requires_grad=True) for a in (h, w)]
        loss = xpsoftmax.linear_cross_entropy(*leaves, T(y), filter_eps=eps, chunk_size=40)
        return loss.detach(), [g.numpy() for g in torch.autograd.grad(loss, leaves)]
    if name == "numpy":
        loss, d_h, d_w, _ = xpsoftmax.linear_cross_entropy_vjp(
            h, w, y, 1.0, filter_eps=eps, chunk_size=40
        )
        return loss, [d_h, d_w]
    jax = pytest.importorskip("jax")
    backend = backends.get("jax")
    target = backend.asarray(y)

    def loss_fn(a: Any, b: Any) -> Any:
        return xpsoftmax.linear_cross_entropy(a, b, target, filter_eps=eps, chunk_size=40)

    loss, grads = jax.jit(jax.value_and_grad(loss_fn, argnums=(0, 1)))(
        backend.asarray(h), backend.asarray(w)
    )
    return backend.to_numpy(loss), [backend.to_numpy(g) for g in grads]


@pytest.mark.parametrize("value", [-1.0, float("inf"), "fast", True])
def test_bad_filter_eps_names_it(value: Any) -> None:
    h, w, _, y = _arrays()
    with pytest.raises((ValueError, TypeError), match="filter_eps"):
        xpsoftmax.linear_cross_entropy(h, w, y, filter_eps=value)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_auto_filter_eps_is_the_resolution_over_32(dtype: str) -> None:
    """ "auto" is the eps of hidden's dtype over 32, Cut Cross-Entropy's rule."""
    from xpsoftmax._validation.linear import prepare_head

    h, w, _, y = _arrays()
    hidden = T(h).to(getattr(torch, dtype))
    options = dict.fromkeys(("linear_bias", "softcap", "weight", "ignore_index", "chunk_size"))
    p = prepare_head(
        hidden,
        T(w),
        T(y),
        temperature=1.0,
        z_loss=0.0,
        label_smoothing=0.0,
        reduction="mean",
        filter_eps="auto",
        **options,
    )
    assert p.filter_eps == torch.finfo(getattr(torch, dtype)).eps / 32
