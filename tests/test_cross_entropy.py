"""cross_entropy against ``torch.nn.functional.cross_entropy`` on every combination both accept.

Class weights, ignored targets, label smoothing, the three reductions, class-index and probability
targets, and extra spatial axes with the class axis at 1 (PyTorch's layout), in float64 at 1e-10
relative: values and gradients. Then the one deliberate difference (every sample ignored), the
same calls under jax.jit and on Dask, and the argument errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpsoftmax
from xpsoftmax import backends

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _case(rng: np.random.Generator) -> dict[str, Any]:
    """One random combination of everything torch's cross_entropy takes."""
    n_classes = int(rng.integers(2, 7))
    spatial = tuple(int(n) for n in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    batch = int(rng.integers(1, 6))
    logits = rng.normal(size=(batch, n_classes, *spatial)) * rng.uniform(0.5, 5.0)
    probabilities = bool(rng.random() < 0.35)
    case: dict[str, Any] = {
        "logits": logits,
        "reduction": str(rng.choice(["none", "sum", "mean"])),
        "label_smoothing": float(rng.choice([0.0, 0.0, 0.1, 0.5, 1.0])),
        "weight": rng.uniform(0.0, 2.0, size=n_classes) if rng.random() < 0.5 else None,
    }
    if probabilities:
        q = rng.dirichlet(np.ones(n_classes), size=(batch, *spatial))
        case["target"] = np.moveaxis(q, -1, 1)
        case["ignore_index"] = None
    else:
        target = rng.integers(0, n_classes, size=(batch, *spatial))
        ignore_index = int(rng.choice([-100, 0, n_classes - 1])) if rng.random() < 0.6 else None
        if ignore_index == -100:
            target = np.where(rng.random(target.shape) < 0.3, -100, target)
        case["target"], case["ignore_index"] = target, ignore_index
    return case


def _torch_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    kwargs = {"reduction": case["reduction"], "label_smoothing": case["label_smoothing"]}
    if case["weight"] is not None:
        kwargs["weight"] = torch.tensor(case["weight"])
    if case["ignore_index"] is not None:
        kwargs["ignore_index"] = case["ignore_index"]
    return kwargs


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_torch_on_random_combinations(seed: int) -> None:
    rng = np.random.default_rng(seed)
    case = _case(rng)
    kwargs = _torch_kwargs(case)
    x = torch.tensor(case["logits"], requires_grad=True)
    target = torch.tensor(case["target"])
    expected = F.cross_entropy(x, target, **kwargs)
    ours_x = torch.tensor(case["logits"], requires_grad=True)
    got = xpsoftmax.cross_entropy(ours_x, target, axis=1, **kwargs)
    if case["reduction"] == "mean" and torch.isnan(expected):
        # Every sample ignored: torch's NaN is our 0 (the one deliberate difference).
        assert float(got.detach()) == 0.0
        return
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    cotangent = torch.tensor(rng.normal(size=tuple(expected.shape)))
    (expected_grad,) = torch.autograd.grad(expected, x, cotangent)
    (got_grad,) = torch.autograd.grad(got, ours_x, cotangent)
    torch.testing.assert_close(got_grad, expected_grad, rtol=1e-10, atol=1e-12)
    # The same through NumPy, which no autodiff watches: the plain path gives the same values.
    numpy_kwargs = {k: (v.numpy() if k == "weight" else v) for k, v in kwargs.items()}
    numpy_result = xpsoftmax.cross_entropy(case["logits"], case["target"], axis=1, **numpy_kwargs)
    np.testing.assert_allclose(numpy_result, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("library", ["torch", "numpy"])
@pytest.mark.parametrize("layout", ["transposed", "class axis first"])
def test_any_memory_layout_gives_torch_values_and_gradients(library: str, layout: str) -> None:
    """Logits whose rows are not contiguous in memory (a transposed view), and the class axis
    first: the target's entry is read and written in place in each slice of our temporaries,
    which keep the input's layout. Sample 0's target dominates (a loss near 1e-20)."""
    rng = np.random.default_rng(4)
    classes_first = rng.normal(size=(7, 300)) * 3.0  # (classes, samples), C order
    classes_first[:, 0] = -40.0
    classes_first[2, 0] = 10.0
    target = rng.integers(0, 7, 300)
    target[0] = 2
    # "transposed": a (samples, classes) view of the same memory, rows strided.
    x_np, axis = (classes_first.T, -1) if layout == "transposed" else (classes_first, 0)
    x_ref = torch.tensor(classes_first.T.copy(), requires_grad=True)
    expected = F.cross_entropy(x_ref, torch.tensor(target), reduction="none")
    (expected_grad,) = torch.autograd.grad(expected.sum(), x_ref)
    if library == "torch":
        x = torch.from_numpy(x_np).requires_grad_()
        loss = xpsoftmax.cross_entropy(x, torch.tensor(target), axis=axis, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), x)
        grad = np.moveaxis(grad.numpy(), axis, -1)
        # Sample 0: s_y - 1 = -t / (1 + t), where torch's 1 + t rounds to 1 and gives 0.
        tail = np.exp(classes_first[[0, 1, 3, 4, 5, 6], 0] - 10.0).sum()
        assert grad[0, 2] == pytest.approx(-tail / (1 + tail), rel=1e-13)
        np.testing.assert_allclose(grad[1:], expected_grad.numpy()[1:], rtol=1e-10, atol=1e-300)
        loss = loss.detach().numpy()
    else:
        loss = xpsoftmax.cross_entropy(x_np, target, axis=axis, reduction="none")
    np.testing.assert_allclose(loss[1:], expected.detach().numpy()[1:], rtol=1e-12)
    # Sample 0: log1p of the others' sum (torch rounds 1 + 1e-20 to 1 and gives 0).
    tail = np.exp(classes_first[[0, 1, 3, 4, 5, 6], 0] - 10.0).sum()
    assert float(loss[0]) == pytest.approx(np.log1p(tail), rel=1e-14)


def test_every_sample_ignored_gives_zero_mean_and_zero_gradient() -> None:
    """The one deliberate difference from torch, which gives NaN here."""
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = torch.tensor([-100, -100])
    x = torch.tensor(logits, requires_grad=True)
    assert torch.isnan(F.cross_entropy(x, target, ignore_index=-100))
    for weight in (None, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)):
        x = torch.tensor(logits, requires_grad=True)
        loss = xpsoftmax.cross_entropy(x, target, ignore_index=-100, weight=weight)
        assert float(loss.detach()) == 0.0
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("seed", range(6))
def test_jax_jit_agrees_with_torch(seed: int) -> None:
    """Under jax.jit the targets are traced: ignored samples are dropped without reading them."""
    jax = pytest.importorskip("jax")
    backends.get("jax").xp  # noqa: B018 - float64 on, as the backend has it
    rng = np.random.default_rng(seed + 100)
    case = _case(rng)
    kwargs = _torch_kwargs(case)
    expected = F.cross_entropy(torch.tensor(case["logits"]), torch.tensor(case["target"]), **kwargs)
    if case["reduction"] == "mean" and not torch.isfinite(expected):
        expected = torch.zeros(())
    static = {k: v for k, v in kwargs.items() if k != "weight"}
    weight = None if case["weight"] is None else jax.numpy.asarray(case["weight"])

    @jax.jit
    def loss(x: Any, target: Any, weight: Any) -> Any:
        return xpsoftmax.cross_entropy(x, target, axis=1, weight=weight, **static)

    got = loss(jax.numpy.asarray(case["logits"]), jax.numpy.asarray(case["target"]), weight)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_dask_stays_lazy_with_weights_and_ignored_targets(rng: np.random.Generator) -> None:
    import dask
    import dask.array as da

    logits = rng.normal(size=(6, 5))
    target = np.array([0, 4, -100, 2, 1, -100])
    weight = rng.uniform(0.5, 2.0, size=5)
    expected = F.cross_entropy(
        torch.tensor(logits),
        torch.tensor(target),
        weight=torch.tensor(weight),
        ignore_index=-100,
        label_smoothing=0.2,
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the library computed a Dask graph: it must stay lazy")

    with dask.config.set(scheduler=refuse):
        result = xpsoftmax.cross_entropy(
            da.from_array(logits, chunks=(2, 2)),
            da.from_array(target, chunks=3),
            weight=da.from_array(weight, chunks=5),
            ignore_index=-100,
            label_smoothing=0.2,
        )
    assert isinstance(result, da.Array)
    got = result.compute(scheduler="sync")
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"weight": np.ones(4)}, ValueError, "weight"),
        ({"weight": np.ones((3, 1))}, ValueError, "weight"),
        ({"weight": np.array([True, False, True])}, TypeError, "weight"),
        ({"ignore_index": True}, TypeError, "ignore_index"),
        ({"ignore_index": 1.5}, TypeError, "ignore_index"),
    ],
)
def test_argument_errors_name_the_argument(kwargs: dict[str, Any], error: type, name: str) -> None:
    with pytest.raises(error, match=name):
        xpsoftmax.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **kwargs)


def test_ignore_index_with_probability_targets() -> None:
    """torch's default -100 is accepted (and means nothing) with probabilities; a class is not."""
    logits, q = np.zeros((2, 3)), np.full((2, 3), 1 / 3)
    np.testing.assert_allclose(
        xpsoftmax.cross_entropy(logits, q, ignore_index=-100), np.log(3.0), rtol=1e-15
    )
    with pytest.raises(ValueError, match="ignore_index"):
        xpsoftmax.cross_entropy(logits, q, ignore_index=1)
