"""Inputs of several megabytes, where logsumexp and cross_entropy sum their exponentials a block
of rows at a time (`_kernels.normalise._blocked_total`) rather than in one input-sized temporary.

Sizes are just past the threshold (4 MiB), so the blocked path runs; rows are checked against
the mpmath oracle (a sample of them, including a row with a dominant logit and a row with a
tie at its maximum) and against the frameworks' own functions.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

import array_api_strict
import numpy as np
import pytest
import torch
from scipy import special
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import allowed_error, error_scale, scaled_ulp_error

import xpsoftmax

#: Rows checked against the oracle: the dominant row, the tied row and a few ordinary ones.
SAMPLED = (0, 1, 2, 17, -1)


def _logits(shape: tuple[int, ...], dtype: Any, seed: int = 0) -> np.ndarray:
    """Logits spread like a language model's; row 0 has one dominant logit (its softmax is
    1 - 1e-20 there), row 1 a tie at its maximum."""
    x = 3.0 * np.random.default_rng(seed).standard_normal(shape)
    rows = x.reshape(-1, shape[-1])
    rows[0] = -40.0
    rows[0, 3] = 10.0
    rows[1, 5] = rows[1, 9] = 20.0
    return x.astype(dtype)


def _sampled(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-1])[list(SAMPLED)]


#: Eager libraries whose arrays may be updated in place: (to the library, back to NumPy).
LIBRARIES = {
    "numpy": (lambda a: a, np.asarray),
    "array_api_strict": (array_api_strict.asarray, np.asarray),
    "torch": (torch.from_numpy, lambda a: a.numpy()),
}


@pytest.mark.parametrize("library", list(LIBRARIES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logsumexp_matches_the_oracle(library: str, dtype: str, temperature: float) -> None:
    x = _logits((3, 200, 2048), dtype)
    to_library, to_numpy = LIBRARIES[library]
    result = to_numpy(xpsoftmax.logsumexp(to_library(x), temperature=temperature))
    rows = _sampled(x).astype(np.float64)
    exact = oracle.logsumexp(rows, temperature=temperature)
    scale = error_scale("logsumexp", rows, temperature=temperature, exact=exact)
    err = scaled_ulp_error(result.reshape(-1)[list(SAMPLED)], exact, dtype, scale)
    assert np.all(err <= allowed_error("logsumexp", dtype, rows, temperature=temperature))
    # Every row, against SciPy's own (in float64, so its rounding does not count).
    expected = temperature * special.logsumexp(x.astype(np.float64) / temperature, axis=-1)
    np.testing.assert_allclose(result, expected, rtol=4 * np.finfo(dtype).eps)


def test_numpy_logsumexp_allocates_a_block_not_an_input() -> None:
    x = _logits((1024, 4096), "float32")
    tracemalloc.start()
    result = xpsoftmax.logsumexp(x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes / 2, f"peak {peak} bytes for an input of {x.nbytes}"
    np.testing.assert_allclose(result, special.logsumexp(x.astype(np.float64), axis=-1), rtol=4e-7)


def test_read_only_and_strided_numpy_input_is_left_alone() -> None:
    base = _logits((2048, 1200), "float64")
    x = base.T  # not contiguous: rows of x are columns of base
    x.flags.writeable = False
    before = x.copy()
    result = xpsoftmax.logsumexp(x)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(result, special.logsumexp(before, axis=-1), rtol=1e-15)


@pytest.mark.parametrize("library", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_matches_the_oracle(library: str, dtype: str) -> None:
    """The blocked sums leave each row's target out (NumPy through a flat view of the block,
    array-api-strict, which has no integer-index assignment, by a select)."""
    x = _logits((700, 2048), dtype)
    target = np.random.default_rng(1).integers(0, 2048, 700)
    target[0], target[1] = 3, 5  # the dominant class (a loss near 1e-20), and a tied one
    to_library, to_numpy = LIBRARIES[library]
    loss = to_numpy(xpsoftmax.cross_entropy(to_library(x), to_library(target), reduction="none"))
    rows = _sampled(x).astype(np.float64)
    exact = oracle.cross_entropy(rows, target[list(SAMPLED)], reduction="none")
    err = scaled_ulp_error(loss[list(SAMPLED)], exact, dtype)
    assert np.all(err <= allowed_error("cross_entropy", dtype, rows)), err
    x64 = x.astype(np.float64)
    expected = special.logsumexp(x64, axis=-1) - x64[np.arange(700), target]
    np.testing.assert_allclose(loss[2:], expected[2:], rtol=8 * np.finfo(dtype).eps)


def _torch_reference(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PyTorch's own cross-entropy per sample, in float64."""
    return torch.nn.functional.cross_entropy(x.double(), target, reduction="none")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_cross_entropy_matches_the_oracle_and_torch(dtype: torch.dtype) -> None:
    x_np = _logits((700, 2048), np.float64)
    x = torch.tensor(x_np, dtype=dtype)
    target = torch.randint(0, 2048, (700,), generator=torch.Generator().manual_seed(1))
    target[0], target[1] = 3, 5  # the dominant class, and one of the tied ones
    loss = xpsoftmax.cross_entropy(x, target, reduction="none")
    rows = _sampled(x.double().numpy())
    exact = oracle.cross_entropy(rows, target.numpy()[list(SAMPLED)], reduction="none")
    name = "float32" if dtype == torch.float32 else "float64"
    err = scaled_ulp_error(loss.double().numpy()[list(SAMPLED)], exact, name)
    assert np.all(err <= allowed_error("cross_entropy", name, rows)), err
    # The dominant row's loss is about 1e-20: PyTorch rounds it to 0, the oracle does not.
    assert float(oracle.to_float(exact)[0]) == pytest.approx(float(loss[0]), rel=1e-5)
    reference = _torch_reference(x, target)
    np.testing.assert_allclose(loss[2:].double(), reference[2:], rtol=8 * torch.finfo(dtype).eps)


def test_torch_cross_entropy_gradient_matches_torch() -> None:
    x = torch.tensor(_logits((4, 175, 2048), np.float32), requires_grad=True)
    target = torch.randint(0, 2048, (4, 175), generator=torch.Generator().manual_seed(2))
    loss = xpsoftmax.cross_entropy(x, target)
    (grad,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_()
    reference = torch.nn.functional.cross_entropy(x64.reshape(-1, 2048), target.reshape(-1))
    (expected,) = torch.autograd.grad(reference, x64)
    assert float(loss.detach()) == pytest.approx(float(reference.detach()), rel=1e-6)
    np.testing.assert_allclose(grad.double(), expected, rtol=1e-5, atol=1e-12)


def test_torch_logsumexp_of_a_transposed_tensor_matches_torch() -> None:
    base = torch.tensor(_logits((2048, 1100), np.float32))
    x = base.T
    before = x.clone()
    result = xpsoftmax.logsumexp(x, temperature=0.5)
    assert torch.equal(x, before)
    expected = 0.5 * torch.logsumexp(x.double() / 0.5, dim=-1)
    np.testing.assert_allclose(result.double(), expected, rtol=4 * torch.finfo(torch.float32).eps)
