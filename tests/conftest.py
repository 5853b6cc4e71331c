"""Fixtures and helpers shared by the core test matrix.

Everything the tests know about backends comes from the `xpsoftmax.backends` registry: the `variant`
fixture runs over every variant id, skipping (with the reason) those this machine cannot run, such as
GPU variants without a GPU. Expected values come from the mpmath oracle (`xpsoftmax.backends.oracle`),
fed the inputs exactly as the backend saw them, i.e. rounded to the test dtype.

Error bounds live in one place, `allowed_error` below, in units of the test dtype's epsilon:

* float16 and bfloat16 are computed in float32 and rounded once, so every function is within one
  unit (1 eps relative to ``max(|exact|, scale)``) of the exact value (SPEC: 1 ulp of the correctly
  rounded result).
* log_softmax: 4 eps relative on every entry but a slice's maxima, where the result near 0 is
  ``-log1p(t)`` with t the tail ``sum exp(z_j)``: its relative error is that of t, into which the
  rounding of each shifted logit ``z_j = (x_j - max) / T`` enters times |z_j|, so the bound there is
  ``4 + 2 |z|max`` (|z|max the largest |z| of the slice). SPEC says "a few ulps, also near 0": that
  holds when the tail logits are close to the maximum, and is far better than the ``x - max -
  log(sum)`` of the frameworks, whose relative error near 0 is of order 1.
* logsumexp: 4 eps relative to ``max(|exact|, max |x|)``: the sum ``max + T log(total)`` cancels where
  the result crosses 0, an ill-conditioning of the function itself, not of the algorithm.
* softmax: ``4 + 2 |z|`` eps relative, with ``z = (x - max) / T`` the shifted logit: both rounding
  errors of the shift-and-scale enter exp multiplied by |z| (Blanchard, Higham & Higham's bound for
  the shifted algorithm).
* Jacobians: two softmax factors, so ``8 + 4 |z|max`` relative, with |z|max the largest |z| of the slice.
* JVP/VJP: the same plus n for the inner product, relative to the scale of the terms
  (``s (|v| + <s, |v|>) / T`` and similar): ``v - <s, v>`` cancels when v is nearly constant, a
  conditioning of the product, not of the algorithm.
* cross_entropy: a sum of non-negative terms ``q_i (-log_softmax_i)``: 4 + n + number of samples.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from xpsoftmax.backends import oracle

import xpsoftmax
from xpsoftmax import backends

LOW_PRECISION = ("float16", "bfloat16")
#: The dtype the library computes in for each input dtype.
COMPUTE_DTYPE = {
    "float16": "float32",
    "bfloat16": "float32",
    "float32": "float32",
    "float64": "float64",
}

REDUCING = ("softmax", "log_softmax", "logsumexp")
JACOBIANS = ("softmax_jacobian", "log_softmax_jacobian")
PRODUCTS = ("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp")
FUNCTIONS = (*REDUCING, *JACOBIANS, *PRODUCTS, "cross_entropy")


def _variant_params(selected: list[backends.Variant]) -> list[Any]:
    params = []
    for v in selected:
        reason = v.unavailable_reason()
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(v, id=v.id, marks=marks))
    return params


ALL_VARIANTS = _variant_params(backends.all_variants())
EAGER_VARIANTS = _variant_params([v for v in backends.all_variants() if not v.compiled])


@pytest.fixture(params=ALL_VARIANTS)
def variant(request: pytest.FixtureRequest) -> backends.Variant:
    """Every backend variant (eager and compiled); unavailable ones skip with their reason."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=EAGER_VARIANTS)
def eager_variant(request: pytest.FixtureRequest) -> backends.Variant:
    """Every eager backend variant."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded by the test id, so that every test sees its own fixed data."""
    # crc32, not hash(): str hashes change from process to process.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _raise_torch_recompile_limit() -> None:
    """The matrix calls each compiled closure code object with many shapes and arguments; dynamo's
    default limit of 8 compilations per code object would otherwise fall back to eager silently."""
    import torch

    torch._dynamo.config.recompile_limit = 256
    torch._dynamo.config.accumulated_recompile_limit = 4096


_COMPILED: dict[tuple[Any, ...], Callable[..., Any]] = {}


def call(
    v: backends.Variant,
    fn: Callable[..., Any] | str,
    *arrays: Any,
    array_kwargs: dict[str, Any] | None = None,
    **static: Any,
) -> Any:
    """Run public function `fn` on `v`: compiled for compiled variants, with `static` (axis, ...)
    closed over so that jit sees them as constants and the arrays as traced arguments."""
    if isinstance(fn, str):
        fn = getattr(xpsoftmax, fn)
    array_kwargs = {k: a for k, a in (array_kwargs or {}).items() if a is not None}
    names = tuple(array_kwargs)
    n_positional = len(arrays)
    if not v.compiled:
        return fn(*arrays, **array_kwargs, **static)
    key = (v.id, fn, n_positional, names, tuple(sorted(static.items(), key=lambda kv: kv[0])))
    if key not in _COMPILED:
        if v.backend.name == "torch":
            _raise_torch_recompile_limit()

        def closure(*args: Any) -> Any:
            kwargs = dict(zip(names, args[n_positional:], strict=True))
            return fn(*args[:n_positional], **kwargs, **static)

        _COMPILED[key] = v.wrap(closure)
    return _COMPILED[key](*arrays, *array_kwargs.values())


def dtype_name(a: Any) -> str:
    """The dtype of a framework array as a plain name ("float32", "bfloat16", ...)."""
    return str(a.dtype).rpartition(".")[2]


def skip_unless_dtype(v: backends.Variant, dtype: str) -> None:
    if dtype not in v.dtypes():
        pytest.skip(f"{v.backend.name} has no {dtype}")


# -- inputs ------------------------------------------------------------------------------------------


def normalise_axes(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def temperature_for(
    kind: Any, shape: tuple[int, ...], axis: Any, dtype: str, rng: np.random.Generator
) -> tuple[Any, Any]:
    """(temperature as the library gets it, as the backend sees it) for a kind: a number or
    "array" (one value per slice, the reduced axes kept with length 1)."""
    compute = COMPUTE_DTYPE[dtype]
    if kind != "array":
        # A Python float meets the input in its compute dtype (weak scalar promotion).
        return float(kind), oracle.round_to(kind, compute)
    axes = normalise_axes(axis, len(shape))
    t_shape = tuple(1 if a in axes else n for a, n in enumerate(shape))
    t = oracle.round_to(rng.uniform(0.3, 3.0, size=t_shape), dtype)
    return t, t


def mask_for(kind: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    return None if kind is None else rng.random(shape) < 0.7


# -- measuring ---------------------------------------------------------------------------------------


def _shifted(x: np.ndarray, axis: Any, t: Any, where: Any) -> np.ndarray:
    """|z| = |x - max| / T per entry, 0 where the entry is excluded or not finite."""
    axes = normalise_axes(axis, x.ndim)
    included = np.isfinite(x) if where is None else np.isfinite(x) & where
    if x.size == 0:
        return np.zeros(x.shape)
    masked = np.where(included, x, -np.inf)
    m = np.max(masked, axis=axes, keepdims=True)
    with np.errstate(invalid="ignore"):
        z = np.abs(masked - m) / np.asarray(t, dtype=np.float64)
    return np.where(included & np.isfinite(m), z, 0.0)


def allowed_error(
    name: str, dtype: str, x: np.ndarray, axis: Any, t: Any, where: Any
) -> np.ndarray | float:
    """The bound, in eps of `dtype`, for each entry of function `name` (see the module docstring)."""
    if dtype in LOW_PRECISION:
        return 1.0
    if name == "logsumexp":
        return 4.0
    z = _shifted(x, axis, t, where)
    if name == "softmax":
        return 4.0 + 2.0 * z
    axes = normalise_axes(axis, x.ndim)
    n = math.prod(x.shape[a] for a in axes)
    zmax = np.max(z, axis=axes, keepdims=True) if z.size else np.zeros(z.shape)
    if name == "log_softmax":
        # At a slice's maximum the result is -log1p(t), whose relative error is that of the tail
        # t = sum exp(z_j): the rounding of each shifted logit z_j, times |z_j|.
        included = np.isfinite(x) if where is None else np.isfinite(x) & where
        return np.where(included & (z == 0), 4.0 + 2.0 * zmax, 4.0)
    if name == "cross_entropy":
        return 4.0 + n + x.size / max(n, 1)
    bound = 8.0 + 4.0 * zmax
    if name in PRODUCTS:
        bound = bound + n
    if name in JACOBIANS:
        # (*batch, 1, 1) against the Jacobian's (*batch, n, n)
        bound = np.expand_dims(np.moveaxis(bound, axes[0], -1), -1)
    return bound


def scale_of(
    name: str, x: np.ndarray, u: Any, axis: Any, t: Any, where: Any, exact: np.ndarray
) -> np.ndarray | None:
    """The magnitude errors are measured against where the function cancels (see the docstring)."""
    if name == "logsumexp":
        axes = normalise_axes(axis, x.ndim)
        included = np.isfinite(x) if where is None else np.isfinite(x) & where
        mags = np.where(included, np.abs(x), 0.0)
        return np.max(mags, axis=axes) if x.size else np.zeros(np.shape(exact))
    if name not in PRODUCTS:
        return None
    s = oracle.to_float(oracle.softmax(x, axis, t, where))
    au = np.abs(np.broadcast_to(u, x.shape))
    if where is not None:
        au = np.where(where, au, 0.0)
    if name == "log_softmax_vjp":
        scale = au + s * np.sum(au, axis=axis, keepdims=True)
    else:
        scale = au + np.sum(s * au, axis=axis, keepdims=True)
        if name.startswith("softmax"):
            scale = s * scale
    return scale / np.asarray(t, dtype=np.float64)


def error_in_eps(result: np.ndarray, exact: Any, dtype: str, scale: Any = None) -> np.ndarray:
    """``|result - exact| / max(|exact|, scale, tiny) / eps`` (oracle.ulp_error when scale is None)."""
    err = oracle.ulp_error(result, exact, dtype)
    if scale is None:
        return err
    magnitude = np.abs(oracle.to_float(exact))
    tiny = oracle.TINY[dtype]
    with np.errstate(invalid="ignore"):
        ratio = np.maximum(magnitude, tiny) / np.maximum(np.maximum(magnitude, scale), tiny)
    return np.where(np.isfinite(err) & (err > 0), err * np.nan_to_num(ratio, nan=1.0), err)


def assert_within(
    result: np.ndarray, exact: Any, dtype: str, bound: Any, scale: Any = None, what: str = ""
) -> float:
    """Assert the error of `result` is within `bound` eps everywhere; returns the largest error."""
    exact = np.asarray(exact, dtype=object)
    assert result.shape == exact.shape, f"{what}: shape {result.shape} != {exact.shape}"
    err = error_in_eps(result, exact, dtype, scale)
    excess = err - np.broadcast_to(bound, err.shape)
    if err.size and not np.all(excess <= 0):
        worst = np.unravel_index(np.argmax(excess), err.shape)
        raise AssertionError(
            f"{what}: error {err[worst]:.3g} eps > bound {np.broadcast_to(bound, err.shape)[worst]:.3g}"
            f" at {worst}: got {result[worst]!r}, exact {float(exact[worst])!r}"
        )
    return float(err.max()) if err.size else 0.0
