"""Tests of ``xpsoftmax.backends``: registry, conversions, devices, compilation, reference functions.

The reference functions are each framework's own implementation; they are checked here against SciPy
in float64 and against closed forms written with NumPy in this file: a framework-versus-framework check,
never a comparison with xpsoftmax itself. Variants that cannot run on this machine (CuPy, CUDA, JAX on
GPU) are skipped with the reason the registry gives; everything else runs.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import textwrap

import array_api_compat
import numpy as np
import pytest
from scipy import special

from xpsoftmax import backends

FRAMEWORKS = ("numpy", "scipy", "jax", "torch", "dask", "cupy", "array_api_strict")
EXPECTED_IDS = [
    "numpy",
    "array_api_strict",
    "dask",
    "jax",
    "jax.jit",
    "torch",
    "torch.compile",
    "cupy",
    "torch:cuda",
    "torch.compile:cuda",
    "jax:gpu",
    "jax.jit:gpu",
    "array_api_strict:device1",
]
#: The spellings of the same ids before the names were one, still accepted.
DASHED_IDS = [
    "numpy",
    "array_api_strict",
    "dask",
    "jax",
    "jax-jit",
    "torch",
    "torch-compile",
    "cupy",
    "torch-cuda",
    "torch-cuda-compile",
    "jax-gpu",
    "jax-gpu-jit",
    "array_api_strict-device1",
]
# Test dependencies: these must be installed wherever the suite runs.
REQUIRED = ("numpy", "array_api_strict", "jax", "torch", "dask")
# Exactly representable in float16 and bfloat16, so every dtype round-trips them exactly.
EXACT_VALUES = np.array([[0.0, 1.0, -2.5], [0.15625, 96.0, -0.375]])


def _params(variants: list[backends.Variant]) -> list[object]:
    """One pytest param per variant; those that cannot run here are skipped with their reason."""
    params = []
    for v in variants:
        reason = v.unavailable_reason()
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(v, id=v.id, marks=marks))
    return params


EAGER = _params([v for v in backends.all_variants() if not v.compiled])
COMPILED = _params([v for v in backends.all_variants() if v.compiled])
AUTODIFF = _params(
    [v for v in backends.all_variants() if v.backend.has_autodiff and not v.compiled]
)
NO_AUTODIFF = [b for b in backends.BACKENDS.values() if not b.has_autodiff]


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(20240531)


# -- registry ---------------------------------------------------------------------------------------


def test_import_and_registry_queries_import_no_framework() -> None:
    code = textwrap.dedent(f"""
        import sys
        import xpsoftmax.backends as b
        b.available()
        b.all_variant_ids()
        b.variants(include_gpu=False)
        b.variant("torch:cuda")
        print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_registry_holds_all_six_backends() -> None:
    names = ["numpy", "array_api_strict", "jax", "torch", "dask", "cupy"]
    assert list(backends.BACKENDS) == names
    for name in names:
        backend = backends.get(name)
        assert isinstance(backend, backends.Backend)
        assert backend.name == name
    with pytest.raises(KeyError, match="unknown backend 'nope'"):
        backends.get("nope")


@pytest.mark.parametrize("backend", backends.BACKENDS.values(), ids=str)
def test_is_installed_agrees_with_find_spec(backend: backends.Backend) -> None:
    assert backend.is_installed() == (importlib.util.find_spec(backend.module) is not None)


def test_test_dependencies_are_available() -> None:
    assert set(REQUIRED) <= {b.name for b in backends.available()}


def test_missing_cupy_is_reported_not_imported() -> None:
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("cupy is installed: the cupy variant tests cover it")
    cupy = backends.get("cupy")
    assert not cupy.is_installed()
    assert cupy.devices() == []
    assert "cupy" not in {b.name for b in backends.available()}
    assert backends.variant("cupy").unavailable_reason() == "cupy is not installed"
    assert "cupy" not in sys.modules


def test_variant_ids_are_fixed_and_ordered() -> None:
    assert backends.all_variant_ids() == EXPECTED_IDS
    assert [v.name for v in backends.all_variants()] == EXPECTED_IDS  # one name, not two
    runnable = [v.id for v in backends.variants()]
    assert runnable == [i for i in EXPECTED_IDS if i in runnable]
    # Every CPU variant runs wherever the test dependencies are installed.
    assert [v.id for v in backends.variants(include_gpu=False)] == EXPECTED_IDS[:7]


def test_the_dashed_spellings_of_earlier_versions_name_the_same_variants() -> None:
    for new, old in zip(EXPECTED_IDS, DASHED_IDS, strict=True):
        assert backends.variant(old) == backends.variant(new)
        assert backends.variant(old).id == new


@pytest.mark.parametrize("v", backends.all_variants(), ids=str)
def test_variant_availability_has_a_reason(v: backends.Variant) -> None:
    reason = v.unavailable_reason()
    runnable = v.backend.is_installed() and v.device in v.backend.devices()
    assert (reason is None) == runnable == (v in backends.variants())
    if reason is not None:
        expected = ("not installed", "no CUDA device", "no GPU device", "needs NumPy 2")
        assert any(words in reason for words in expected), reason


def test_variant_lookup_and_wrap() -> None:
    v = backends.variant("torch.compile:cuda")
    assert (v.backend.name, v.device, v.compiled) == ("torch", "cuda:0", True)
    assert backends.variant("cupy").device == "cuda:0"
    assert backends.variant("jax:gpu").device == "gpu:0"
    with pytest.raises(KeyError, match="unknown variant 'jax-tpu'"):
        backends.variant("jax-tpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.compiled = False  # type: ignore[misc]

    def fn(x: object) -> object:
        return x

    assert backends.variant("numpy").wrap(fn) is fn
    assert backends.variant("jax").wrap(fn) is fn


# -- devices, dtypes, conversion --------------------------------------------------------------------


@pytest.mark.parametrize("v", EAGER)
def test_devices_and_dtypes(v: backends.Variant) -> None:
    devices = v.backend.devices()
    assert v.device in devices
    if v.backend.name != "cupy":  # CuPy arrays live on GPUs only
        assert devices[0] == "cpu"
    dtypes = v.dtypes()
    assert {"float32", "float64"} <= set(dtypes) <= set(backends.FLOAT_DTYPES)
    assert ("bfloat16" in dtypes) == (v.backend.name in ("jax", "torch"))
    assert ("float16" in dtypes) == (v.backend.name != "array_api_strict")


@pytest.mark.parametrize("dtype", backends.FLOAT_DTYPES)
@pytest.mark.parametrize("v", EAGER)
def test_float_round_trip(v: backends.Variant, dtype: str) -> None:
    if dtype not in v.dtypes():
        with pytest.raises(ValueError, match=f"has no {dtype}"):
            v.asarray(EXACT_VALUES, dtype=dtype)
        return
    x = v.asarray(EXACT_VALUES, dtype=dtype)
    assert array_api_compat.array_namespace(x) is v.xp
    assert str(x.dtype).endswith(dtype)
    assert v.backend.device_of(x) == v.device
    back = v.to_numpy(x)
    # NumPy has no bfloat16: it comes back as float32, which holds every bfloat16 exactly.
    assert back.dtype == np.dtype("float32" if dtype == "bfloat16" else dtype)
    np.testing.assert_array_equal(back, EXACT_VALUES)


@pytest.mark.parametrize("dtype", ["bool", "int32", "int64", "float64"])
@pytest.mark.parametrize("v", EAGER)
def test_dtype_is_kept_when_none_is_given(v: backends.Variant, dtype: str) -> None:
    a = (np.arange(6).reshape(2, 3) % 3).astype(dtype)
    back = v.to_numpy(v.asarray(a))
    assert back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)


@pytest.mark.parametrize("v", EAGER)
def test_conversions_copy(v: backends.Variant) -> None:
    a = EXACT_VALUES.copy()
    x = v.asarray(a)
    a[0, 0] = 42.0  # the framework array does not alias the source ...
    back = v.to_numpy(x)
    np.testing.assert_array_equal(back, EXACT_VALUES)
    back[0, 0] = 42.0  # ... nor does the host copy alias the framework array
    np.testing.assert_array_equal(v.to_numpy(x), EXACT_VALUES)


@pytest.mark.parametrize("v", EAGER)
def test_synchronize_returns_the_computed_array(v: backends.Variant) -> None:
    x = v.asarray(EXACT_VALUES)
    done = v.synchronize(x * 2)
    assert array_api_compat.array_namespace(done) is v.xp
    np.testing.assert_array_equal(v.to_numpy(done), EXACT_VALUES * 2)


def test_dask_chunks_option_and_persist() -> None:
    dask = backends.get("dask")
    x = dask.asarray(np.ones((2, 5)), chunks=(1, 2))
    assert x.chunks == ((1, 1), (2, 2, 1))
    # Host references come back with the input's chunks, so lazy tests keep their layout.
    assert dask.ref_softmax(x, axis=-1).chunks == x.chunks
    persisted = dask.synchronize(x + 1)
    assert len(persisted.dask) == persisted.npartitions  # only computed chunks are left
    with pytest.raises(TypeError, match="takes no options"):
        backends.get("numpy").asarray(np.ones(3), chunks=2)


# -- reference functions ----------------------------------------------------------------------------

SOFTMAX_FAMILY = {
    "softmax": special.softmax,
    "log_softmax": special.log_softmax,
    "logsumexp": special.logsumexp,
}


@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=str)
@pytest.mark.parametrize("name", SOFTMAX_FAMILY)
@pytest.mark.parametrize("v", EAGER)
def test_softmax_family_references_agree_with_scipy(
    v: backends.Variant, name: str, axis: int | tuple[int, ...] | None, rng: np.random.Generator
) -> None:
    a = 3 * rng.standard_normal((3, 4, 5))
    expected = SOFTMAX_FAMILY[name](a, axis=axis)
    result = getattr(v.backend, f"ref_{name}")(v.asarray(a), axis)
    assert array_api_compat.array_namespace(result) is v.xp
    assert v.backend.device_of(result) == v.device
    np.testing.assert_allclose(v.to_numpy(result), expected, rtol=1e-12, atol=1e-14)


def _cross_entropy_by_definition(
    logits: np.ndarray, target: np.ndarray, axis: int, eps: float, reduction: str
) -> np.ndarray:
    """The definition (spec: Cross-entropy) with an explicit one-hot array: not the backends' way."""
    n_classes = logits.shape[axis]
    probs = target if target.dtype.kind == "f" else np.moveaxis(np.eye(n_classes)[target], -1, axis)
    probs = (1 - eps) * probs + eps / n_classes
    losses = -np.sum(probs * special.log_softmax(logits, axis=axis), axis=axis)
    return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("target_kind", ["indices", "probabilities"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("v", EAGER)
def test_cross_entropy_reference_agrees_with_definition(
    v: backends.Variant,
    axis: int,
    target_kind: str,
    eps: float,
    reduction: str,
    rng: np.random.Generator,
) -> None:
    logits = 2 * rng.standard_normal((4, 3, 5))
    n_classes = logits.shape[axis]
    if target_kind == "indices":
        target = rng.integers(0, n_classes, size=np.delete(logits.shape, axis))
    else:
        target = special.softmax(rng.standard_normal(logits.shape), axis=axis)
    expected = _cross_entropy_by_definition(logits, target, axis, eps, reduction)
    result = v.backend.ref_cross_entropy(
        v.asarray(logits), v.asarray(target), axis=axis, label_smoothing=eps, reduction=reduction
    )
    assert array_api_compat.array_namespace(result) is v.xp
    np.testing.assert_allclose(v.to_numpy(result), expected, rtol=1e-12)


@pytest.mark.parametrize("v", EAGER)
def test_cross_entropy_reference_of_one_sample(v: backends.Variant) -> None:
    logits = np.array([1.0, 3.0, -2.0])
    result = v.backend.ref_cross_entropy(v.asarray(logits), v.asarray(np.array(1)))
    np.testing.assert_allclose(v.to_numpy(result), -special.log_softmax(logits)[1], rtol=1e-14)


def _softmax_jacobian(a: np.ndarray) -> np.ndarray:
    """Closed form s_i (delta_ij - s_j) along the last axis."""
    s = special.softmax(a, axis=-1)
    return s[..., :, None] * (np.eye(a.shape[-1]) - s[..., None, :])


@pytest.mark.parametrize("v", AUTODIFF)
def test_ref_jacobian_matches_closed_form(v: backends.Variant, rng: np.random.Generator) -> None:
    a = rng.standard_normal((2, 3, 4))
    backend = v.backend

    def softmax(row: object) -> object:
        return backend.ref_softmax(row, -1)

    def log_softmax(row: object) -> object:
        return backend.ref_log_softmax(row, -1)

    jac = backend.ref_jacobian(softmax, v.asarray(a))
    assert tuple(jac.shape) == (2, 3, 4, 4)
    np.testing.assert_allclose(v.to_numpy(jac), _softmax_jacobian(a), rtol=1e-12, atol=1e-15)
    # log_softmax: delta_ij - s_j, here on a single vector (no batch axes).
    jac = v.to_numpy(backend.ref_jacobian(log_softmax, v.asarray(a[0, 0])))
    expected = np.eye(4) - special.softmax(a[0, 0])[None, :]
    np.testing.assert_allclose(jac, expected, rtol=1e-12, atol=1e-15)


def test_torch_ref_jacobian_of_a_function_with_a_data_dependent_branch() -> None:
    import torch

    torch_backend = backends.get("torch")

    def softmax_with_check(row: torch.Tensor) -> torch.Tensor:
        if bool(torch.isnan(row).any()):  # an eager check, which torch.func.vmap refuses
            raise ValueError("NaN")
        return torch.softmax(row, -1)

    a = np.random.default_rng(0).standard_normal((2, 3))
    jac = torch_backend.ref_jacobian(softmax_with_check, torch_backend.asarray(a))
    np.testing.assert_allclose(torch_backend.to_numpy(jac), _softmax_jacobian(a), rtol=1e-12)


@pytest.mark.parametrize("backend", NO_AUTODIFF, ids=str)
def test_ref_jacobian_needs_autodiff(backend: backends.Backend) -> None:
    assert not backend.has_autodiff
    with pytest.raises(NotImplementedError, match="has no automatic differentiation"):
        backend.ref_jacobian(lambda row: row, np.ones((2, 3)))


# -- compilation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", NO_AUTODIFF, ids=str)
def test_compile_is_the_identity_without_a_compiler(backend: backends.Backend) -> None:
    def fn(x: object) -> object:
        return x

    assert backend.compile(fn, static_argnames=("axis",)) is fn


def test_jax_compile_is_jit_with_static_argnames() -> None:
    import jax

    jax_backend = backends.get("jax")
    softmax = jax_backend.compile(
        lambda x, axis: jax.nn.softmax(x, axis=axis), static_argnames=("axis",)
    )
    assert hasattr(softmax, "lower")  # a jitted function, not the Python one
    x = jax_backend.asarray(EXACT_VALUES)
    # jax.nn.softmax cannot take a traced axis: this lowers only because axis is static.
    assert softmax.lower(x, axis=0).compile() is not None
    np.testing.assert_allclose(
        jax_backend.to_numpy(softmax(x, axis=0)), special.softmax(EXACT_VALUES, axis=0), rtol=1e-14
    )


def test_torch_compile_uses_fullgraph() -> None:
    import torch

    def with_graph_break(x: torch.Tensor) -> torch.Tensor:
        return x + 1 if x.sum() > 0 else x  # a data-dependent branch: a graph break

    compiled = backends.get("torch").compile(with_graph_break)
    # Without fullgraph=True this would silently fall back to eager Python; with it, it fails.
    with pytest.raises(torch._dynamo.exc.Unsupported):
        compiled(torch.ones(3))


@pytest.mark.parametrize("v", COMPILED)
def test_compiled_variant_runs_the_reference(v: backends.Variant) -> None:
    backend = v.backend
    softmax = v.wrap(lambda x, axis: backend.ref_softmax(x, axis), static_argnames=("axis",))
    result = v.synchronize(softmax(v.asarray(EXACT_VALUES), axis=1))
    assert v.backend.device_of(result) == v.device
    np.testing.assert_allclose(
        v.to_numpy(result), special.softmax(EXACT_VALUES, axis=1), rtol=1e-14
    )
