"""linear_cross_entropy and linear_cross_entropy_vjp.

Values and gradients in float64 against the materialised formula (``h @ W.T + b``, then
torch's own ``cross_entropy`` or the formula written out) and against
``torch.nn.functional.linear_cross_entropy`` on every combination both accept; the extras
(softcap, z-loss, temperature); every backend CI installs; PyTorch's and JAX's transforms;
blocks of one token and blocks that do not divide the tokens; float16/bfloat16 gradients
against PyTorch's chunked path; the argument errors; unmodified inputs; and measurements
that no tokens x vocabulary array is made, in one call and in the backward pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from typing import Any

import numpy as np
import pytest
from version_bounds import newer_needed

import xpsoftmax
from xpsoftmax import backends

torch = pytest.importorskip("torch")
F = torch.nn.functional
T = torch.tensor


def _case(rng: np.random.Generator) -> dict[str, Any]:
    """One random combination of everything torch's linear_cross_entropy takes."""
    n, d, v = int(rng.integers(1, 12)), int(rng.integers(1, 6)), int(rng.integers(2, 9))
    case: dict[str, Any] = {
        "hidden": rng.normal(size=(n, d)),
        "linear_weight": rng.normal(size=(v, d)) * rng.uniform(0.5, 3.0),
        "linear_bias": rng.normal(size=v) if rng.random() < 0.5 else None,
        "reduction": str(rng.choice(["none", "sum", "mean"])),
        "label_smoothing": float(rng.choice([0.0, 0.0, 0.1, 1.0])),
        "weight": rng.uniform(0.0, 2.0, size=v) if rng.random() < 0.5 else None,
        "chunk_size": int(rng.integers(1, 5)) if rng.random() < 0.5 else None,
    }
    if rng.random() < 0.3:
        case["target"], case["ignore_index"] = rng.dirichlet(np.ones(v), size=n), None
    else:
        target = rng.integers(0, v, size=n)
        case["target"] = np.where(rng.random(n) < 0.3, -100, target)
        case["ignore_index"] = -100
    return case


def _torch_leaves(case: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        T(case[k], requires_grad=True)
        for k in ("hidden", "linear_weight", "linear_bias")
        if case[k] is not None
    )


def _call_torch(fn: Any, case: dict[str, Any], leaves: tuple[Any, ...], **extra: Any) -> Any:
    keys = {k: a for k, a in case.items() if k not in ("hidden", "linear_weight", "target")}
    keys = {k: T(a) if isinstance(a, np.ndarray) else a for k, a in keys.items()}
    keys.pop("chunk_size")
    if case["linear_bias"] is not None:
        keys["linear_bias"] = leaves[2]
    return fn(leaves[0], leaves[1], T(case["target"]), **keys, **extra)


def _assert_close(got: Any, expected: Any, rtol: float = 1e-10) -> None:
    got = np.asarray(got)
    expected = np.asarray(expected)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("seed", range(16))
def test_agrees_with_torch_linear_cross_entropy(seed: int) -> None:
    case = _case(np.random.default_rng(seed))
    leaves = _torch_leaves(case)
    expected = _call_torch(F.linear_cross_entropy, case, leaves)
    ours_leaves = _torch_leaves(case)
    got = _call_torch(
        xpsoftmax.linear_cross_entropy, case, ours_leaves, chunk_size=case["chunk_size"]
    )
    _assert_close(got.detach(), expected.detach())
    seed_g = torch.ones_like(expected)
    expected_grads = torch.autograd.grad(expected, leaves, seed_g)
    _assert_close_all(torch.autograd.grad(got, ours_leaves, seed_g), expected_grads)
    # The same numbers without autodiff, through the VJP in one call.
    loss, *grads = xpsoftmax.linear_cross_entropy_vjp(
        case["hidden"],
        case["linear_weight"],
        case["target"],
        seed_g.numpy(),
        **{k: a for k, a in case.items() if k not in ("hidden", "linear_weight", "target")},
    )
    _assert_close(loss, expected.detach())
    assert (grads[2] is None) == (case["linear_bias"] is None)
    _assert_close_all([g for g in grads if g is not None], expected_grads)


@pytest.mark.parametrize("seed", range(8))
def test_jax_gradients_agree_with_torch_linear_cross_entropy(seed: int) -> None:
    """JAX differentiates the rule's JVP, which takes the tangent a block of classes at a
    time: the same random combinations, in blocks of 3 tokens' worth of logits (most cases
    then have several blocks of classes, some a shorter last one), the gradients of
    ``jax.jit(jax.grad)`` against PyTorch's."""
    jax = pytest.importorskip("jax")
    backend = backends.get("jax")
    case = _case(np.random.default_rng(seed))
    leaves = _torch_leaves(case)
    expected = _call_torch(F.linear_cross_entropy, case, leaves)
    expected_grads = torch.autograd.grad(expected.sum(), leaves)
    options = {k: a for k, a in case.items() if k not in ("hidden", "linear_weight", "target")}
    options = {
        k: backend.asarray(a) if isinstance(a, np.ndarray) else a for k, a in options.items()
    }
    bias = options.pop("linear_bias")
    options["chunk_size"] = 3
    target = backend.asarray(case["target"])

    def summed(h: Any, w: Any, b: Any) -> Any:
        loss = xpsoftmax.linear_cross_entropy(h, w, target, linear_bias=b, **options)
        return jax.numpy.sum(loss)

    arrays = (backend.asarray(case["hidden"]), backend.asarray(case["linear_weight"]), bias)
    argnums = (0, 1) if bias is None else (0, 1, 2)
    older = newer_needed("transposed-maps", "jax")
    if older is not None and options.get("reduction") == "none":
        # (a JAX older than the per-token rule's capability: our error, naming it)
        with pytest.raises(ImportError, match=older):
            jax.jit(jax.grad(summed, argnums))(*arrays)
        return
    got = jax.jit(jax.grad(summed, argnums))(*arrays)
    _assert_close_all([backend.to_numpy(g) for g in got], expected_grads)


def _assert_close_all(got: Any, expected: Any, rtol: float = 1e-10) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        _assert_close(_plain(a), _plain(b), rtol)


def _plain(a: Any) -> Any:
    """A torch tensor without its autograd record; other arrays as they are."""
    return a.detach() if hasattr(a, "detach") else a


def _materialised(h: Any, w: Any, b: Any, y: Any, softcap: Any, z_loss: float, t: float) -> Any:
    """The formula written out in torch, logits and all."""
    z = h @ w.T + (0 if b is None else b)
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    u = z / t
    lse = torch.logsumexp(u, dim=-1)
    return F.cross_entropy(u, y, reduction="none") + z_loss * lse**2


@pytest.mark.parametrize(
    ("softcap", "z_loss", "temperature", "chunk_size"),
    [(None, 0.0, 1.0, 1), (2.0, 0.0, 1.0, 3), (None, 1e-2, 1.0, None), (3.0, 0.1, 0.7, 4)],
)
def test_extras_against_the_materialised_formula(
    softcap: Any, z_loss: float, temperature: float, chunk_size: Any
) -> None:
    rng = np.random.default_rng(7)
    h, w, b = rng.normal(size=(2, 7, 5)), rng.normal(size=(11, 5)) * 2, rng.normal(size=11)
    y = rng.integers(0, 11, size=(2, 7))
    options = {"softcap": softcap, "z_loss": z_loss, "temperature": temperature}
    leaves = tuple(T(a, requires_grad=True) for a in (h, w, b))
    ref = _materialised(leaves[0].reshape(14, 5), *leaves[1:], T(y).reshape(14), **_named(options))
    ref = ref.mean()
    mine = tuple(T(a, requires_grad=True) for a in (h, w, b))
    got = xpsoftmax.linear_cross_entropy(
        mine[0], mine[1], T(y), linear_bias=mine[2], chunk_size=chunk_size, **options
    )
    _assert_close(got.detach(), ref.detach())
    _assert_close_all(torch.autograd.grad(got, mine), torch.autograd.grad(ref, leaves))


def _named(options: dict[str, Any]) -> dict[str, Any]:
    return {"softcap": options["softcap"], "z_loss": options["z_loss"], "t": options["temperature"]}


BACKENDS = ("numpy", "array_api_strict", "dask", "jax", "torch")


@pytest.mark.parametrize("name", BACKENDS)
def test_every_backend_values_and_vjp(name: str) -> None:
    backend = backends.get(name)
    rng = np.random.default_rng(3)
    h, w, b = rng.normal(size=(9, 4)), rng.normal(size=(6, 4)), rng.normal(size=6)
    y = np.array([0, 5, 2, -100, 1, 1, 3, 4, 0])
    weight = rng.uniform(0.5, 2.0, size=6)
    options = {"ignore_index": -100, "label_smoothing": 0.1, "softcap": 4.0, "z_loss": 0.01}
    leaves = tuple(T(a, requires_grad=True) for a in (h, w, b))
    z = 4.0 * torch.tanh((leaves[0] @ leaves[1].T + leaves[2]) / 4.0)
    per_token = F.cross_entropy(
        z, T(y), weight=T(weight), ignore_index=-100, label_smoothing=0.1, reduction="none"
    ) + 0.01 * torch.where(T(y) == -100, 0.0, torch.logsumexp(z, -1) ** 2)
    expected = per_token.sum() / T(weight)[T(y)[T(y) != -100]].sum()
    expected_grads = torch.autograd.grad(expected, leaves)
    arrays = [backend.asarray(a) for a in (h, w, y, weight, b)]
    got = xpsoftmax.linear_cross_entropy(
        arrays[0], arrays[1], arrays[2], weight=arrays[3], linear_bias=arrays[4], **options
    )
    result = xpsoftmax.linear_cross_entropy_vjp(
        *arrays[:3],
        backend.asarray(np.array(1.0)),
        weight=arrays[3],
        linear_bias=arrays[4],
        **options,
    )
    if name == "dask":
        assert all(type(r).__name__ == "Array" for r in (got, *result))  # lazy until computed
    _assert_close(backend.to_numpy(got), expected.detach())
    _assert_close(backend.to_numpy(result[0]), expected.detach())
    _assert_close_all([backend.to_numpy(r) for r in result[1:]], expected_grads)


def test_dask_stays_lazy() -> None:
    import dask
    import dask.array as da

    rng = np.random.default_rng(4)
    h, w, y = rng.normal(size=(12, 3)), rng.normal(size=(5, 3)), rng.integers(0, 5, size=12)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the library computed a Dask graph: it must stay lazy")

    with dask.config.set(scheduler=refuse):
        outputs = xpsoftmax.linear_cross_entropy_vjp(
            da.from_array(h, chunks=(4, 3)), da.from_array(w), da.from_array(y, chunks=4), 1.0
        )
    leaves = tuple(T(a, requires_grad=True) for a in (h, w))
    expected = F.linear_cross_entropy(*leaves, T(y))
    _assert_close(outputs[0].compute(scheduler="sync"), expected.detach())
    _assert_close_all(
        [o.compute(scheduler="sync") for o in outputs[1:3]],
        torch.autograd.grad(expected, leaves),
    )


def _torch_pair() -> tuple[Any, Any, tuple[Any, ...]]:
    rng = np.random.default_rng(5)
    h, w, b = (
        T(a, requires_grad=True)
        for a in (rng.normal(size=(7, 3)), rng.normal(size=(5, 3)), rng.normal(size=5))
    )
    y = T(rng.integers(0, 5, size=7))

    def ours(h: Any, w: Any, b: Any) -> Any:
        return xpsoftmax.linear_cross_entropy(
            h, w, y, linear_bias=b, softcap=3.0, z_loss=0.1, chunk_size=3
        )

    def reference(h: Any, w: Any, b: Any) -> Any:
        return _materialised(h, w, b, y, 3.0, 0.1, 1.0).mean()

    return ours, reference, (h, w, b)


def test_torch_transforms() -> None:
    from torch.func import grad, jacfwd, vmap

    ours, reference, args = _torch_pair()
    assert torch.autograd.gradcheck(ours, args)
    assert torch.autograd.gradgradcheck(ours, args)  # double backward
    _assert_close_all(
        grad(ours, argnums=(0, 1, 2))(*args), grad(reference, argnums=(0, 1, 2))(*args)
    )
    _assert_close_all(jacfwd(ours, argnums=(0, 1))(*args), jacfwd(reference, argnums=(0, 1))(*args))
    stacked = torch.stack([args[0], 2 * args[0]]).detach()
    _assert_close_all(
        [vmap(grad(ours), in_dims=(0, None, None))(stacked, *args[1:])],
        [vmap(grad(reference), in_dims=(0, None, None))(stacked, *args[1:])],
    )
    with torch.autograd.forward_ad.dual_level():
        tangent = torch.ones_like(args[0])
        dual = torch.autograd.forward_ad.make_dual(args[0].detach(), tangent)
        got = torch.autograd.forward_ad.unpack_dual(ours(dual, *args[1:])).tangent
        dual = torch.autograd.forward_ad.make_dual(args[0].detach(), tangent)
        want = torch.autograd.forward_ad.unpack_dual(reference(dual, *args[1:])).tangent
    _assert_close(got.detach(), want.detach())


def test_torch_compile_forward_and_backward() -> None:
    ours, reference, args = _torch_pair()
    compiled = torch.compile(ours, fullgraph=True)
    got = compiled(*args)
    want = reference(*args)
    _assert_close(got.detach(), want.detach())
    _assert_close_all(torch.autograd.grad(got, args), torch.autograd.grad(want, args))


#: A process whose first call of linear_cross_entropy is compiled, with torch imported after
#: xpsoftmax: the derivative rule is not attached yet, so inductor differentiates the blocks'
#: composition itself. Prints the largest gradient error against the materialised formula.
COMPILED_FIRST = """
import json
import numpy as np
import xpsoftmax
import torch
import torch.nn.functional as F

rng = np.random.default_rng(5)
h, w = (torch.tensor(rng.normal(size=s), requires_grad=True) for s in ((7, 3), (5, 3)))
y = torch.tensor(rng.integers(0, 5, size=7))
ours = torch.compile(lambda h, w: xpsoftmax.linear_cross_entropy(h, w, y, chunk_size=3))
got = torch.autograd.grad(ours(h, w), (h, w))
want = torch.autograd.grad(F.cross_entropy(h @ w.T, y), (h, w))
print(json.dumps(max(float((a - b).abs().max()) for a, b in zip(got, want))))
"""


@pytest.mark.slow
def test_torch_compile_as_the_first_call_with_torch_imported_after() -> None:
    """The composition's gradients under inductor are right too (they once were not: PyTorch
    2.13's inductor mis-compiles a derivative through each block's maximum beside the target's
    gather, so the shift is a constant to autodiff). Its own process: the order matters."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(COMPILED_FIRST)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) < 1e-12


@pytest.mark.slow
def test_jax_transforms() -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    backend = backends.get("jax")
    rng = np.random.default_rng(6)
    h, w, b = (
        backend.asarray(a)
        for a in (rng.normal(size=(7, 3)), rng.normal(size=(5, 3)), rng.normal(size=5))
    )
    y = backend.asarray(rng.integers(0, 5, size=7))

    def ours(h: Any, w: Any, b: Any) -> Any:
        return xpsoftmax.linear_cross_entropy(
            h, w, y, linear_bias=b, softcap=3.0, z_loss=0.1, chunk_size=3
        )

    def reference(h: Any, w: Any, b: Any) -> Any:
        z = 3.0 * jnp.tanh((h @ w.T + b) / 3.0)
        lse = jax.nn.logsumexp(z, axis=-1)
        return jnp.mean(lse - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0] + 0.1 * lse**2)

    # Eager grad once; the other transforms under jit, one compilation each rather than an
    # operation-by-operation dispatch (the same rules run either way).
    args, argnums = (h, w, b), (0, 1, 2)
    _assert_close(jax.jit(ours)(*args), reference(*args))
    for transform in (
        jax.grad,
        lambda f, argnums: jax.jit(jax.jacfwd(f, argnums)),
        lambda f, argnums: jax.jit(jax.grad(f, argnums)),
    ):
        _assert_close_all(transform(ours, argnums)(*args), transform(reference, argnums)(*args))
    tangents = tuple(jnp.ones_like(a) for a in args)

    def hvp(f: Any) -> Any:
        return jax.jit(lambda *a: jax.jvp(jax.grad(f, argnums), a, tangents)[1])(*args)

    _assert_close_all(hvp(ours), hvp(reference))
    stacked = jnp.stack([h, 2 * h])
    _assert_close(
        jax.jit(jax.vmap(jax.grad(ours), in_axes=(0, None, None)))(stacked, w, b),
        jax.vmap(jax.grad(reference), in_axes=(0, None, None))(stacked, w, b),
    )


def _relative_errors(got: Any, expected: Any) -> list[float]:
    return [
        float((g.double() - e).abs().max() / e.abs().max())
        for g, e in zip(got, expected, strict=True)
    ]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_gradients_no_worse_than_torch(dtype: str) -> None:
    """Gradients of float16 and bfloat16 input, against the float64 formula: no worse than
    PyTorch's own materialised loss in the same dtype; and where the products are staged
    through float32 (float16 always, whose range would overflow; bfloat16 where the processor
    has no native bfloat16 products), no worse than PyTorch's chunked path, which stages its
    products on CPU too."""
    from xpsoftmax._platform import narrow_products

    rng = np.random.default_rng(8)
    half = getattr(torch, dtype)
    h, w = T(rng.normal(size=(256, 64))).to(half), (T(rng.normal(size=(2000, 64))) * 0.3).to(half)
    y = T(rng.integers(0, 2000, size=256))
    exact = [a.double().requires_grad_() for a in (h, w)]
    expected = torch.autograd.grad(F.cross_entropy(exact[0] @ exact[1].T, y), exact)
    leaves = [a.clone().requires_grad_() for a in (h, w)]
    ours = torch.autograd.grad(xpsoftmax.linear_cross_entropy(*leaves, y), leaves)
    assert all(g.dtype == half for g in ours)
    leaves = [a.clone().requires_grad_() for a in (h, w)]
    materialised = torch.autograd.grad(F.cross_entropy(leaves[0] @ leaves[1].T, y), leaves)
    peers = [materialised]
    if not narrow_products(h, half):
        leaves = [a.clone().requires_grad_() for a in (h, w)]
        options = torch.nn.LinearCrossEntropyOptions(acc_policy="accurate")
        peers.append(
            torch.autograd.grad(F.linear_cross_entropy(*leaves, y, options=options), leaves)
        )
    for theirs in peers:
        for mine, peer in zip(
            _relative_errors(ours, expected), _relative_errors(theirs, expected), strict=True
        ):
            assert mine <= peer


def test_float16_products_are_staged_through_float32() -> None:
    """float16's largest value is 65,504: its products would turn large finite logits into
    infinities (and the loss into inf - inf), so they are never taken in float16. Logits
    [120,000, 0] with the first class the target: the loss is 0, and so is its gradient."""
    h = T([[400.0, 0.0]], dtype=torch.float16, requires_grad=True)
    w = T([[300.0, 0.0], [0.0, 1.0]], dtype=torch.float16, requires_grad=True)
    loss = xpsoftmax.linear_cross_entropy(h, w, T([0]))
    assert loss.dtype == torch.float16
    assert float(loss.detach()) == 0.0
    for grad in torch.autograd.grad(loss, (h, w)):
        assert torch.all(grad == 0.0)


@pytest.mark.parametrize(
    ("change", "argument"),
    [
        ({"linear_weight": np.ones((5, 4))}, "linear_weight"),
        ({"linear_bias": np.ones(4)}, "linear_bias"),
        ({"target": np.zeros(5, dtype=np.int64)}, "target"),
        ({"target": np.zeros((6, 4))}, "target"),
        ({"target": np.array([0, 1, 2, 5, 0, 1])}, "target"),
        ({"softcap": 0.0}, "softcap"),
        ({"softcap": -1.0}, "softcap"),
        ({"z_loss": -0.1}, "z_loss"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"temperature": 0.0}, "temperature"),
        ({"reduction": "avg"}, "reduction"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"weight": np.ones(3)}, "weight"),
    ],
)
def test_bad_input_names_its_argument(change: dict[str, Any], argument: str) -> None:
    rng = np.random.default_rng(9)
    call = {
        "hidden": rng.normal(size=(6, 3)),
        "linear_weight": rng.normal(size=(5, 3)),
        "target": rng.integers(0, 5, size=6),
    } | change
    h, w, y = call.pop("hidden"), call.pop("linear_weight"), call.pop("target")
    with pytest.raises(ValueError, match=argument):
        xpsoftmax.linear_cross_entropy(h, w, y, **call)
    with pytest.raises(ValueError, match=argument):
        xpsoftmax.linear_cross_entropy_vjp(h, w, y, np.array(1.0), **call)


def test_vjp_g_of_the_wrong_shape() -> None:
    h, w, y = np.ones((4, 2)), np.ones((3, 2)), np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="g must"):
        xpsoftmax.linear_cross_entropy_vjp(h, w, y, np.ones(4))
    with pytest.raises(ValueError, match="g must"):
        xpsoftmax.linear_cross_entropy_vjp(h, w, y, np.array(1.0), reduction="none")


def test_inputs_unchanged_and_no_warnings() -> None:
    rng = np.random.default_rng(10)
    arrays = {
        "hidden": rng.normal(size=(8, 3)).astype(np.float32),
        "linear_weight": rng.normal(size=(6, 3)).astype(np.float32),
        "target": rng.integers(0, 6, size=8),
        "linear_bias": rng.normal(size=6).astype(np.float32),
        "weight": rng.uniform(size=6),
    }
    copies = {k: a.copy() for k, a in arrays.items()}
    h, w, y = arrays["hidden"], arrays["linear_weight"], arrays["target"]
    extra = {"linear_bias": arrays["linear_bias"], "weight": arrays["weight"], "chunk_size": 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xpsoftmax.linear_cross_entropy(h, w, y, softcap=1.0, z_loss=0.5, **extra)
        xpsoftmax.linear_cross_entropy_vjp(h, w, y, np.float32(2.0), label_smoothing=0.3, **extra)
        leaves = [T(a, requires_grad=True) for a in (h, w)]
        xpsoftmax.linear_cross_entropy(*leaves, T(y), chunk_size=3).backward()
    for k, a in arrays.items():
        np.testing.assert_array_equal(a, copies[k])


def test_no_tokens_by_vocabulary_array() -> None:
    """tracemalloc sees every NumPy allocation: the call's peak stays far below one logits
    array (N x V float32), while the materialised formula needs several. The blocks come from
    the shapes: 256 tokens (the rule's floor), a sixteenth of the logits each."""
    rng = np.random.default_rng(11)
    n, d, v = 4096, 8, 2048
    h = rng.normal(size=(n, d)).astype(np.float32)
    w = (rng.normal(size=(v, d)) * 0.1).astype(np.float32)
    y = rng.integers(0, v, size=n)
    logits_bytes = n * v * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        xpsoftmax.linear_cross_entropy_vjp(h, w, y, 1.0)
        ours = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        xpsoftmax.cross_entropy(h @ w.T, y)  # the materialised loss, for scale
        materialised = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert materialised >= logits_bytes
    assert ours < 0.4 * logits_bytes


def test_backward_by_blocks_of_classes_holds_no_tokens_by_vocabulary_array() -> None:
    """The backward pass from the saved logsumexp (a block of classes at a time, the path
    PyTorch's autograd takes) run on NumPy, where tracemalloc sees every allocation: its
    gradients are those of the materialised formula, and its peak, beside the gradients it
    returns, stays far below one logits array."""
    from xpsoftmax._kernels.blocks import Head, HeadArrays
    from xpsoftmax._kernels.class_blocks import gradients_from_normaliser
    from xpsoftmax._platform import array_namespace

    rng = np.random.default_rng(13)
    n, d, v = 4096, 8, 2048
    h = rng.normal(size=(n, d)).astype(np.float32)
    w = (rng.normal(size=(v, d)) * 0.1).astype(np.float32)
    y = rng.integers(0, v, size=n)
    z = (h @ w.T).astype(np.float64)
    lse = np.log(np.sum(np.exp(z), axis=1))
    saved_lse = lse.astype(np.float32)
    g = np.full(n, 1.0 / n, dtype=np.float32)
    head = Head(1.0, None, 0.0, 0.0, True, 256)
    xp = array_namespace(h)
    # A first call sets up what every later one reuses (namespaces, probes): not the pass's.
    gradients_from_normaliser(xp, head, HeadArrays(h[:2], w, None, y[:2]), g[:2], saved_lse[:2])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        d_h, d_w, _ = gradients_from_normaliser(xp, head, HeadArrays(h, w, None, y), g, saved_lse)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - d_h.nbytes - d_w.nbytes < 0.4 * n * v * 4
    cotangent = np.exp(z - lse[:, None])
    cotangent[np.arange(n), y] -= 1.0
    cotangent /= n
    np.testing.assert_allclose(d_h, cotangent @ w, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(d_w, cotangent.T @ h, rtol=1e-4, atol=1e-7)


def test_class_probability_targets_and_empty_batches() -> None:
    rng = np.random.default_rng(12)
    h, w = rng.normal(size=(3, 2, 4)), rng.normal(size=(5, 4))
    q = rng.dirichlet(np.ones(5), size=(3, 2))
    got = xpsoftmax.linear_cross_entropy(h, w, q, reduction="none", chunk_size=4)
    expected = F.cross_entropy(T(h @ w.T).reshape(6, 5), T(q).reshape(6, 5), reduction="none")
    _assert_close(got, expected.reshape(3, 2))
    empty = xpsoftmax.linear_cross_entropy(np.ones((0, 4)), w, np.zeros(0, dtype=np.int64))
    assert float(empty) == 0.0


def test_jax_scan_holds_the_weight_gradient_and_a_block_or_two() -> None:
    """Under jit(value_and_grad), XLA's temporaries for the mean over 8 blocks: the weight
    gradient the scan carries and at most two blocks' logits (their cotangent's products may
    need a second). A leading device axis of 1 on every block, or a selection against a
    constant 0 that XLA hoisted out of the scan, each kept another block-sized array (12.6
    MiB here, where this bound is 9). The values are the materialised loss's."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    n, d, v, rows = 2048, 64, 4096, 256
    rng = np.random.default_rng(33)
    h = jnp.asarray(rng.standard_normal((n, d)), dtype=jnp.float32)
    w = jnp.asarray(rng.standard_normal((v, d)) / 8.0, dtype=jnp.float32)
    y = jnp.asarray(rng.integers(0, v, n))

    def ours(a: Any, b: Any, t: Any) -> Any:
        return xpsoftmax.linear_cross_entropy(a, b, t, chunk_size=rows)

    def materialised(a: Any, b: Any, t: Any) -> Any:
        log_p = jax.nn.log_softmax(a @ b.T, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_p, t[:, None], axis=-1))

    step = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))
    temp = step.lower(h, w, y).compile().memory_analysis().temp_size_in_bytes
    carry, block = v * d * 4, rows * v * 4
    assert temp < carry + 2 * block, (temp / 2**20, carry / 2**20, block / 2**20)
    (loss, grads), (want, want_grads) = (
        step(h, w, y),
        jax.value_and_grad(materialised, (0, 1))(h, w, y),
    )
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    for got, expected in zip(grads, want_grads, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
