"""logsumexp's weights `b`, `return_sign` and complex input, on every backend variant.

Expected values come from mpmath at 100 digits (real input) and from
``scipy.special.logsumexp`` (complex input and the special cases it defines); gradients from
the frameworks' own logsumexp and from finite differences.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath
import numpy as np
import pytest
import scipy.special
from conftest import ALL_VARIANTS, call

import xpsoftmax
from xpsoftmax import backends

EPS = {"float32": 2.0**-23, "float64": 2.0**-52}
COMPILED_VARIANTS = [p for p in ALL_VARIANTS if p.values[0].compiled]


def exact_weighted(
    x: np.ndarray, b: np.ndarray, axis: int, t: float, where: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log|S|, sign S, condition number) per slice, S = sum over included of b exp(x / T),
    and the log-magnitude scaled by T, all at 100 digits."""
    x, b = np.broadcast_arrays(x, b)
    w = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
    x, b, w = (np.moveaxis(a, axis, -1) for a in (x, b, w))
    log_abs = np.empty(x.shape[:-1])
    sign = np.empty(x.shape[:-1])
    condition = np.empty(x.shape[:-1])
    with mpmath.workdps(100):
        for idx in np.ndindex(x.shape[:-1]):
            terms = [
                mpmath.mpf(float(bj)) * mpmath.exp(mpmath.mpf(float(xj)) / t)
                for xj, bj, wj in zip(x[idx], b[idx], w[idx], strict=True)
                if wj and bj != 0
            ]
            total = mpmath.fsum(terms)
            magnitude = mpmath.fsum(abs(term) for term in terms)
            sign[idx] = float(mpmath.sign(total))
            log_abs[idx] = float(t * mpmath.log(abs(total))) if total else -math.inf
            condition[idx] = float(magnitude / abs(total)) if total else math.inf
    return log_abs, sign, condition


#: (shape, axis, temperature, with a mask)
Case = tuple[tuple[int, ...], int, float, bool]
CASES: list[Case] = [
    ((5,), -1, 1.0, False),
    ((3, 6), 1, 1.0, True),
    ((4, 3, 2), 0, 0.4, False),
    ((2, 7), -1, 2.5, True),
]


def _case_id(case: Case) -> str:
    shape, axis, t, masked = case
    return f"{'x'.join(map(str, shape))}-axis{axis}-T{t}" + ("-masked" if masked else "")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_weights_and_sign_against_mpmath(
    eager_variant: backends.Variant, dtype: str, case: Case, rng: np.random.Generator
) -> None:
    check_against_mpmath(eager_variant, dtype, *case, rng)


@pytest.mark.parametrize("variant", COMPILED_VARIANTS)
def test_weights_and_sign_compiled(variant: backends.Variant, rng: np.random.Generator) -> None:
    """Compiled once (jax.jit, torch.compile(fullgraph=True)) on the case with a mask."""
    check_against_mpmath(variant, "float32", *CASES[3], rng)


def check_against_mpmath(
    variant: backends.Variant,
    dtype: str,
    shape: tuple[int, ...],
    axis: int,
    t: float,
    masked: bool,
    rng: np.random.Generator,
) -> None:
    if dtype not in variant.backend.float_dtypes:
        pytest.skip(f"{variant} has no {dtype}")
    x = rng.normal(size=shape).astype(dtype) * 4
    b = rng.choice([-2.0, -0.5, 0.0, 0.3, 1.0, 4.0], size=shape).astype(dtype)
    where = rng.random(shape) < 0.8 if masked else None
    log_abs, sign, condition = exact_weighted(x, b, axis, t, where)
    kwargs = {"b": variant.asarray(b), "where": None if where is None else variant.asarray(where)}
    out, got_sign = call(
        variant, "logsumexp", variant.asarray(x), array_kwargs=kwargs, axis=axis,
        temperature=t, return_sign=True,
    )  # fmt: skip
    out, got_sign = variant.to_numpy(out), variant.to_numpy(got_sign)
    assert out.dtype == np.dtype(dtype)
    well_conditioned = condition < 1e3
    np.testing.assert_array_equal(got_sign[well_conditioned], sign[well_conditioned])
    # The sum's relative error is about eps times its condition number.
    bound = 8 * EPS[dtype] * (np.abs(log_abs) + t * condition)
    finite = np.isfinite(log_abs)
    assert np.all(np.abs(out[finite] - log_abs[finite]) <= bound[finite])
    assert np.all(out[~finite] == log_abs[~finite])

    plain = call(variant, "logsumexp", variant.asarray(x), array_kwargs=kwargs, axis=axis,
                 temperature=t)  # fmt: skip
    expected = np.where(sign < 0, np.nan, log_abs)
    np.testing.assert_allclose(variant.to_numpy(plain), expected, rtol=1e3 * EPS[dtype])


def test_dominant_entry_keeps_its_digits() -> None:
    """log(1 + e^-40) = 4.25e-18 with weights and for complex input, as without (log1p)."""
    exact = math.log1p(math.exp(-40.0))
    out = xpsoftmax.logsumexp(np.array([0.0, -40.0]), b=np.array([1.0, 1.0]))
    assert float(out) == pytest.approx(exact, rel=1e-15)
    out = xpsoftmax.logsumexp(np.array([0.0, -40.0]), b=np.array([2.0, 2.0]))
    assert float(out) == pytest.approx(math.log(2.0) + exact, rel=1e-15)
    out = xpsoftmax.logsumexp(np.array([0.0 + 0j, -40.0 + 0j]))
    assert complex(out).real == pytest.approx(exact, rel=1e-15)


def _complex_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, Any]]:
    wide = rng.uniform(1, 40, (4, 9)) + 1j * rng.uniform(1, 40, (4, 9))
    near = rng.normal(size=(3, 5)) + 1j * rng.normal(size=(3, 5))
    return [(wide, None), (near, rng.normal(size=(3, 5))), (near, near[::-1] * 0.5)]


def test_complex_against_scipy(variant: backends.Variant, rng: np.random.Generator) -> None:
    if variant.backend.name == "torch" and variant.compiled:
        # Inductor has no complex code generation: it warns, then fails on this graph.
        pytest.skip("torch.compile (inductor) does not compile complex operations")
    for x, b in _complex_cases(rng):
        kwargs = {"b": None if b is None else variant.asarray(b)}
        ref = scipy.special.logsumexp(x, b=b, axis=-1)
        got = call(variant, "logsumexp", variant.asarray(x), array_kwargs=kwargs, axis=-1)
        np.testing.assert_allclose(variant.to_numpy(got), ref, rtol=1e-13)
        ref_out, ref_sign = scipy.special.logsumexp(x, b=b, axis=-1, return_sign=True)
        out, sign = call(variant, "logsumexp", variant.asarray(x), array_kwargs=kwargs, axis=-1,
                         return_sign=True)  # fmt: skip
        np.testing.assert_allclose(variant.to_numpy(out), ref_out, rtol=1e-13)
        np.testing.assert_allclose(variant.to_numpy(sign), ref_sign, rtol=1e-13)
        assert np.all(np.abs(np.imag(variant.to_numpy(got))) <= math.pi)


SPECIAL = [  # (x, b): slices whose answer SciPy defines
    ([1.0, math.inf], [1.0, 0.0]),  # a zero weight removes even +inf
    ([1.0, math.nan], [2.0, 0.0]),  # ... and NaN
    ([math.inf], [-1.0]),  # log|-inf| = inf, sign -1
    ([math.inf, math.inf], [1.0, -1.0]),  # inf - inf
    ([1.0, 1.0], [1.0, -1.0]),  # a zero sum: -inf, sign 0
    ([1.0, 2.0], [1.0, -1.0]),  # negative: NaN without return_sign
    ([-math.inf, 0.0], [math.inf, 1.0]),  # 0 * inf
    ([0.0, 1.0], [math.inf, -1.0]),  # an infinite weight
    ([], []),  # nothing: -inf
]


@pytest.mark.parametrize(("x", "b"), SPECIAL)
def test_special_values_as_scipy(eager_variant: backends.Variant, x: Any, b: Any) -> None:
    xa, ba = np.asarray(x, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(all="ignore"):
        ref = scipy.special.logsumexp(xa, b=ba)
        ref_out, ref_sign = scipy.special.logsumexp(xa, b=ba, return_sign=True)
    v = eager_variant
    x_, b_ = v.asarray(xa, dtype="float32"), v.asarray(ba, dtype="float32")
    np.testing.assert_array_equal(v.to_numpy(xpsoftmax.logsumexp(x_, b=b_)), np.float32(ref))
    out, sign = xpsoftmax.logsumexp(x_, b=b_, return_sign=True)
    np.testing.assert_array_equal(v.to_numpy(out), np.float32(ref_out))
    if len(x):  # (SciPy's sign of an empty sum is -1; ours is 0, as for any zero sum)
        np.testing.assert_array_equal(v.to_numpy(sign), np.float32(ref_sign))


INFINITIES = [-math.inf, math.inf, complex(-math.inf, 0.0), complex(math.inf, 2.3562),
              complex(math.inf, math.inf), complex(-math.inf, 3.927), complex(math.inf, -0.0)]  # fmt: skip


def test_complex_infinities_as_numpy() -> None:
    """The complex logarithm of the complex sum, as NumPy's own exp, sum and log give it."""
    for x in INFINITIES:
        for y in INFINITIES:
            a = np.asarray([x, y], dtype=np.complex128)
            with np.errstate(all="ignore"):
                ref = np.log(np.sum(np.exp(a)))
            np.testing.assert_array_equal(xpsoftmax.logsumexp(a), ref, err_msg=f"{x}, {y}")


def test_complex_only_in_logsumexp() -> None:
    x = np.array([1.0 + 1j, 2.0])
    for function in (xpsoftmax.softmax, xpsoftmax.log_softmax):
        with pytest.raises(TypeError, match="x must be real"):
            function(x)


def test_errors_name_b() -> None:
    with pytest.raises(ValueError, match=r"^b with shape"):
        xpsoftmax.logsumexp(np.zeros((2, 3)), b=np.ones(4))
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"^b is a torch\.Tensor"):
        xpsoftmax.logsumexp(np.zeros(3), b=torch.ones(3))


def test_weights_broadcast_both_ways() -> None:
    """As in SciPy, x may broadcast to b's shape as well as b to x's."""
    out = xpsoftmax.logsumexp(np.zeros((4, 1, 2, 1)), b=np.ones((3, 1, 5)), axis=None)
    assert float(out) == pytest.approx(math.log(4 * 3 * 2 * 5))


def test_temperature_and_where_with_weights() -> None:
    x, b = np.array([1.0, 2.0, 3.0]), np.array([2.0, -1.0, 0.5])
    where = np.array([True, False, True])
    out = xpsoftmax.logsumexp(x, b=b, where=where, temperature=0.5)
    expected = 0.5 * math.log(2.0 * math.exp(2.0) + 0.5 * math.exp(6.0))
    assert float(out) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("library", ["torch", "jax"])
def test_gradients_against_the_frameworks(library: str, rng: np.random.Generator) -> None:
    """d/dx and d/db against the framework's own logsumexp (log b added to x for torch)."""
    x = rng.normal(size=(3, 5)) * 3
    b = rng.uniform(0.2, 2.0, size=(3, 5))
    b[0, 1] = 0.0  # a removed entry: no gradient w.r.t. x there
    x[1, 2] = -math.inf  # an entry that adds nothing: finite gradients
    if library == "torch":
        torch = pytest.importorskip("torch")
        gx, gb, rx, rb = (torch.tensor(a, requires_grad=True) for a in (x, b, x, b))
        xpsoftmax.logsumexp(gx, b=gb, temperature=0.7).sum().backward()
        (0.7 * torch.logsumexp(rx / 0.7 + torch.log(rb), dim=-1)).sum().backward()
        got = (gx.grad.numpy(), gb.grad.numpy())
        ref = (rx.grad.numpy(), rb.grad.numpy())
        ref[1][0, 1] = got[1][0, 1]  # (torch's log(0) gives this one an infinite gradient)
    else:
        jax = pytest.importorskip("jax")
        jsp = pytest.importorskip("jax.scipy.special")
        jnp = jax.numpy

        def ours(x: Any, b: Any) -> Any:
            return xpsoftmax.logsumexp(x, b=b).sum()

        def theirs(x: Any, b: Any) -> Any:
            return jsp.logsumexp(x, b=b, axis=-1).sum()

        xj, bj = jnp.asarray(x), jnp.asarray(b)
        got = jax.jit(jax.grad(ours, argnums=(0, 1)))(xj, bj)
        ref = jax.grad(theirs, argnums=(0, 1))(xj, bj)
    for g, r in zip(got, ref, strict=True):
        assert np.all(np.isfinite(np.asarray(g)))
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-12, atol=1e-15)


def test_gradient_with_negative_weights_by_finite_differences() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor([0.3, -1.2, 2.0, 0.7], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([1.5, -0.4, 0.9, -2.0], dtype=torch.float64, requires_grad=True)

    def f(x: Any, b: Any) -> Any:
        return xpsoftmax.logsumexp(x, b=b, return_sign=True)[0]

    assert torch.autograd.gradcheck(f, (x, b))


def test_torch_compile_fullgraph_with_weights() -> None:
    torch = pytest.importorskip("torch")
    x = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
    b = torch.tensor([[1.0, -1.0, 0.5], [2.0, 0.0, 1.0]])
    compiled = torch.compile(
        lambda x, b: xpsoftmax.logsumexp(x, b=b, return_sign=True), fullgraph=True
    )
    out, sign = compiled(x, b)
    ref_out, ref_sign = scipy.special.logsumexp(x.numpy(), b=b.numpy(), axis=-1, return_sign=True)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-6)
    np.testing.assert_array_equal(sign.numpy(), ref_sign)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_weights_near_the_float_limit(sign: float) -> None:
    """Weights whose sum would overflow give the finite logarithm, silently (the exact value:
    log(sum b e^x) = 700 + log(1.7e308 (1 + sign 0.9))), with the sign of the sum."""
    import warnings

    x = np.array([700.0, 700.0])
    b = np.array([1.7e308, sign * 1.53e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, got_sign = xpsoftmax.logsumexp(x, b=b, return_sign=True)
    expected = 700.0 + math.log(1.7) + 308 * math.log(10.0) + math.log1p(sign * 0.9)
    assert float(got_sign) == 1.0
    np.testing.assert_allclose(float(value), expected, rtol=1e-14)
