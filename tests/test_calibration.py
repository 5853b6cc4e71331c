"""fit_temperature, calibration_error and calibration_curve on every backend variant.

Expected values never come from the library: the fitted temperature is checked against SciPy's
scalar minimiser on the loss written out here in NumPy (`scipy.special.logsumexp`); the calibration
figures against a plain NumPy loop over the bins and against torchmetrics'
``MulticlassCalibrationError``. torch.compile unrolls fit_temperature's 30 fixed steps (about a
minute to compile), so it has one test of its own, marked slow; every other variant runs them all.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from conftest import ALL_VARIANTS, call
from scipy import optimize, special

import xpsoftmax
from xpsoftmax import backends

FIT_VARIANTS = [p for p in ALL_VARIANTS if p.values[0].id != "torch.compile"]


# -- independent computations ----------------------------------------------------------------------


def mean_nll(temperature: float, z: np.ndarray, y: np.ndarray, where: Any = None) -> float:
    """The mean cross-entropy at T, in float64, with excluded classes at -inf."""
    z = np.asarray(z, dtype=np.float64) / temperature
    if where is not None:
        z = np.where(where, z, -np.inf)
    label_logit = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    return float(np.mean(special.logsumexp(z, axis=-1) - label_logit))


def scipy_temperature(z: np.ndarray, y: np.ndarray, where: Any = None) -> float:
    """The minimiser of `mean_nll` by Brent's method on log T, to the last digits it can reach."""
    result = optimize.minimize_scalar(
        lambda log_t: mean_nll(float(np.exp(log_t)), z, y, where),
        bounds=(-12.0, 12.0),
        method="bounded",
        options={"xatol": 1e-12, "maxiter": 2000},
    )
    assert result.success
    return float(np.exp(result.x))


def numpy_bins(
    z: np.ndarray, y: np.ndarray, n_bins: int, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean confidence, accuracy, count) per bin (k/n, (k+1)/n], the first also holding 0."""
    s = special.softmax(np.asarray(z, dtype=np.float64) / temperature, axis=-1)
    s = s.reshape(-1, s.shape[-1])
    confidence, correct = s.max(axis=-1), s.argmax(axis=-1) == y.reshape(-1)
    mean_confidence, accuracy, count = np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins, int)
    for k in range(n_bins):
        lower, upper = k / n_bins, (k + 1) / n_bins
        inside = (confidence <= upper) & ((confidence > lower) | (k == 0))
        count[k] = inside.sum()
        if count[k]:
            mean_confidence[k] = confidence[inside].mean()
            accuracy[k] = correct[inside].mean()
    return mean_confidence, accuracy, count


def numpy_error(
    z: np.ndarray, y: np.ndarray, n_bins: int, norm: str, temperature: float = 1.0
) -> float:
    confidence, accuracy, count = numpy_bins(z, y, n_bins, temperature)
    gap, weight = np.abs(accuracy - confidence), count / count.sum()
    if norm == "l1":
        return float(np.sum(weight * gap))
    if norm == "l2":
        return float(np.sqrt(np.sum(weight * gap**2)))
    return float(gap[count > 0].max())


def overconfident(
    rng: np.random.Generator, n: int = 300, k: int = 6, scale: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a model right about 60% of the time but sure of itself (the optimum T > 1)."""
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k)) * scale
    z[np.arange(n), y] += scale * rng.random(n)
    return z, y


def to_float(v: backends.Variant, a: Any) -> float:
    return float(v.to_numpy(a))


# -- fit_temperature -------------------------------------------------------------------------------


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_matches_scipy_in_float64(v: backends.Variant, rng: np.random.Generator) -> None:
    z, y = overconfident(rng)
    z_in, y_in = v.asarray(z), v.asarray(y)
    t = call(v, "fit_temperature", z_in, y_in)
    assert t.shape == ()
    assert "float64" in str(t.dtype)
    expected = scipy_temperature(z, y)
    assert expected > 1.5  # the case is the one temperature scaling is for
    np.testing.assert_allclose(to_float(v, t), expected, rtol=1e-6)
    np.testing.assert_array_equal(v.to_numpy(z_in), z)  # the input is left as it was


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_with_a_mask_along_another_axis(v: backends.Variant, rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=120, k=8)
    where = rng.random(z.shape) < 0.7
    where[np.arange(len(y)), y] = True  # every label takes part
    expected = scipy_temperature(z, y, where)
    # Classes along axis 0 of a (8, 3, 40) array: samples are the other two axes.
    moved = lambda a: np.moveaxis(a.reshape(3, 40, 8), -1, 0)
    t = call(
        v,
        "fit_temperature",
        v.asarray(moved(z)),
        v.asarray(y.reshape(3, 40)),
        array_kwargs={"where": v.asarray(moved(where))},
        axis=0,
    )
    np.testing.assert_allclose(to_float(v, t), expected, rtol=1e-6)


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_in_float32(v: backends.Variant, rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=2000, k=10)
    z32 = z.astype(np.float32)
    t = call(v, "fit_temperature", v.asarray(z32), v.asarray(y))
    assert "float32" in str(t.dtype)
    # float32 sums of 20000 terms: the optimum of the rounded data, to float32's accuracy.
    np.testing.assert_allclose(to_float(v, t), scipy_temperature(z32, y), rtol=1e-4)


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_on_underconfident_logits(v: backends.Variant, rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=400, k=4, scale=0.05)  # timid: the optimum is T < 1
    t = call(v, "fit_temperature", v.asarray(z), v.asarray(y))
    expected = scipy_temperature(z, y)
    assert expected < 0.2
    np.testing.assert_allclose(to_float(v, t), expected, rtol=1e-6)


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_degenerate_cases(v: backends.Variant, rng: np.random.Generator) -> None:
    z = rng.normal(size=(50, 5))
    best = z.argmax(axis=-1)
    worst = z.argmin(axis=-1)
    # Every label the largest logit: the loss keeps falling as T -> 0, so the answer is 0.
    falls = [mean_nll(t, z, best) for t in (1.0, 0.1, 0.01, 0.001)]
    assert all(a > b for a, b in itertools.pairwise(falls))
    assert to_float(v, call(v, "fit_temperature", v.asarray(z), v.asarray(best))) == 0.0
    # Every label the smallest: the loss falls as T grows, towards uniform, so the answer is inf.
    rises = [mean_nll(t, z, worst) for t in (1.0, 10.0, 100.0, 1000.0)]
    assert all(a > b for a, b in itertools.pairwise(rises))
    assert to_float(v, call(v, "fit_temperature", v.asarray(z), v.asarray(worst))) == np.inf
    # Constant rows carry no information: inf too (softmax is uniform at every T).
    flat = np.zeros((4, 3))
    assert (
        to_float(v, call(v, "fit_temperature", v.asarray(flat), v.asarray(best[:4] % 3))) == np.inf
    )


@pytest.mark.parametrize("v", FIT_VARIANTS)
def test_fit_is_nan_where_the_loss_is_infinite(
    v: backends.Variant, rng: np.random.Generator
) -> None:
    z, y = overconfident(rng, n=20, k=4)
    where = np.ones(z.shape, dtype=bool)
    where[3, y[3]] = False  # one label excluded: its loss is inf at every T
    assert mean_nll(1.0, z, y, where) == np.inf
    t = call(
        v, "fit_temperature", v.asarray(z), v.asarray(y), array_kwargs={"where": v.asarray(where)}
    )
    assert np.isnan(to_float(v, t))
    poisoned = z.copy()
    poisoned[5, 0] = np.nan
    assert np.isnan(to_float(v, call(v, "fit_temperature", v.asarray(poisoned), v.asarray(y))))


def test_fit_ignores_minus_infinity_like_an_excluded_class(rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=60, k=5)
    where = rng.random(z.shape) < 0.7
    where[np.arange(len(y)), y] = True
    expected = scipy_temperature(z, y, where)
    got = xpsoftmax.fit_temperature(np.where(where, z, -np.inf), y)
    np.testing.assert_allclose(float(got), expected, rtol=1e-6)


def test_fit_on_dask_stays_lazy(rng: np.random.Generator) -> None:
    import dask
    import dask.array as da

    z, y = overconfident(rng, n=200, k=9)
    dask_backend = backends.get("dask")
    z_lazy = dask_backend.asarray(z, chunks=(50, 4))  # the class axis split over 3 chunks
    y_lazy = dask_backend.asarray(y, chunks=(50,))

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("fit_temperature asked Dask to compute")

    with dask.config.set(scheduler=refuse):
        t = xpsoftmax.fit_temperature(z_lazy, y_lazy)
    assert isinstance(t, da.Array)
    np.testing.assert_allclose(
        float(t.compute(scheduler="sync")), scipy_temperature(z, y), rtol=1e-6
    )


@pytest.mark.slow
def test_fit_under_torch_compile(rng: np.random.Generator) -> None:
    v = backends.variant("torch.compile")
    if not v.available:
        pytest.skip(v.unavailable_reason() or "")
    z, y = overconfident(rng, n=100, k=5)
    t = call(v, "fit_temperature", v.asarray(z), v.asarray(y))
    np.testing.assert_allclose(to_float(v, t), scipy_temperature(z, y), rtol=1e-6)


def test_fit_reaches_far_temperatures_on_the_fixed_steps(rng: np.random.Generator) -> None:
    """jax.jit takes the 30 fixed steps: enough from T = 1 to T of 1e-70 or 1e70."""
    v = backends.variant("jax.jit")
    if not v.available:
        pytest.skip(v.unavailable_reason() or "")
    z, y = overconfident(rng, n=100, k=5)
    for scale in (1e-70, 1e70):
        t = call(v, "fit_temperature", v.asarray(z * scale), v.asarray(y))
        np.testing.assert_allclose(to_float(v, t) / scale, scipy_temperature(z, y), rtol=1e-6)


# -- calibration_error and calibration_curve -----------------------------------------------------


@pytest.mark.parametrize("v", ALL_VARIANTS)
def test_curve_and_error_match_a_numpy_loop(v: backends.Variant, rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=500, k=5, scale=1.5)
    z_in, y_in = v.asarray(z), v.asarray(y)
    for n_bins, temperature in ((15, 1.0), (7, 2.5)):
        confidence, accuracy, count = call(
            v, "calibration_curve", z_in, y_in, n_bins=n_bins, temperature=temperature
        )
        exact = numpy_bins(z, y, n_bins, temperature)
        np.testing.assert_allclose(v.to_numpy(confidence), exact[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(v.to_numpy(accuracy), exact[1], rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(v.to_numpy(count), exact[2])
        assert (exact[2] == 0).any()  # empty bins
        assert (exact[2] > 0).sum() > 3
        for norm in ("l1", "l2", "max"):
            got = call(
                v,
                "calibration_error",
                z_in,
                y_in,
                n_bins=n_bins,
                norm=norm,
                temperature=temperature,
            )
            expected = numpy_error(z, y, n_bins, norm, temperature)
            np.testing.assert_allclose(to_float(v, got), expected, rtol=1e-12)
    np.testing.assert_array_equal(v.to_numpy(z_in), z)  # the inputs are left as they were
    np.testing.assert_array_equal(v.to_numpy(y_in), y)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_error_matches_torchmetrics(norm: str, n_bins: int, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    classification = pytest.importorskip("torchmetrics.classification")
    z, y = overconfident(rng, n=1000, k=7, scale=2.0)
    probabilities = special.softmax(z, axis=-1)
    confidence = probabilities.max(axis=-1).astype(np.float32)  # torchmetrics bins in float32
    # torchmetrics' bins are [k/n, (k+1)/n) with 1.0 in a bin of its own; the spec's are
    # (k/n, (k+1)/n]. They agree wherever no confidence sits on a boundary: check that here.
    assert not np.isin(confidence, np.linspace(0, 1, n_bins + 1, dtype=np.float32)).any()
    metric = classification.MulticlassCalibrationError(num_classes=7, n_bins=n_bins, norm=norm)
    expected = float(metric(torch.tensor(probabilities), torch.tensor(y)))
    got = float(xpsoftmax.calibration_error(z, y, n_bins=n_bins, norm=norm))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("v", ALL_VARIANTS)
def test_bins_are_closed_above(v: backends.Variant) -> None:
    """Confidences exactly on a boundary: 1/4 (four equal logits), 1/2 (two), and 1 (a -inf)."""
    z = np.array(
        [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, -np.inf, -np.inf], [0.0, -np.inf, -np.inf, -np.inf]]
    )
    y = np.array([0, 1, 0])  # right, wrong (argmax takes the first of the ties), right
    confidence, accuracy, count = call(v, "calibration_curve", v.asarray(z), v.asarray(y), n_bins=4)
    exact = numpy_bins(z, y, 4)
    np.testing.assert_array_equal(v.to_numpy(count), exact[2])
    np.testing.assert_array_equal(v.to_numpy(count), [1, 1, 0, 1])
    np.testing.assert_array_equal(v.to_numpy(confidence), exact[0])
    np.testing.assert_array_equal(v.to_numpy(accuracy), exact[1])


def test_error_is_unchanged_by_the_batch_layout(rng: np.random.Generator) -> None:
    z, y = overconfident(rng, n=120, k=5, scale=1.0)
    layout = np.moveaxis(z.reshape(4, 30, 5), -1, 1)  # classes along axis 1
    got = xpsoftmax.calibration_error(layout, y.reshape(4, 30), axis=1, n_bins=10)
    np.testing.assert_allclose(float(got), numpy_error(z, y, 10, "l1"), rtol=1e-12)
    one = xpsoftmax.calibration_curve(z[0], y[0], n_bins=3)  # a single sample
    np.testing.assert_array_equal(one[2], numpy_bins(z[:1], y[:1], 3)[2])


def test_calibration_on_dask_stays_lazy(rng: np.random.Generator) -> None:
    import dask
    import dask.array as da

    z, y = overconfident(rng, n=300, k=6, scale=1.0)
    dask_backend = backends.get("dask")
    z_lazy, y_lazy = (
        dask_backend.asarray(z, chunks=(100, 3)),
        dask_backend.asarray(y, chunks=(100,)),
    )

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("calibration asked Dask to compute")

    with dask.config.set(scheduler=refuse):
        error = xpsoftmax.calibration_error(z_lazy, y_lazy, norm="l2")
        curve = xpsoftmax.calibration_curve(z_lazy, y_lazy)
    assert isinstance(error, da.Array)
    assert all(isinstance(a, da.Array) for a in curve)
    np.testing.assert_allclose(float(error.compute(scheduler="sync")), numpy_error(z, y, 15, "l2"))
    np.testing.assert_array_equal(curve[2].compute(scheduler="sync"), numpy_bins(z, y, 15)[2])


def test_temperature_scaling_never_changes_the_accuracy(rng: np.random.Generator) -> None:
    z, y = overconfident(rng)
    t = float(xpsoftmax.fit_temperature(z, y))
    before = numpy_bins(z, y, 1)[1][0]
    after = xpsoftmax.calibration_curve(z, y, n_bins=1, temperature=t)[1]
    np.testing.assert_allclose(after, [before], rtol=1e-12)
    assert numpy_error(z, y, 15, "l1", t) < numpy_error(z, y, 15, "l1")


# -- errors ----------------------------------------------------------------------------------------

FUNCTIONS = ["fit_temperature", "calibration_error", "calibration_curve"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bad_labels(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    z, y = v.asarray(np.zeros((4, 3))), np.array([0, 1, 2, 0])
    fn = getattr(xpsoftmax, name)
    with pytest.raises(TypeError, match="labels"):
        fn(z, v.asarray(y.astype(np.float64)))
    with pytest.raises(ValueError, match="labels"):
        fn(z, v.asarray(y[:3]))
    with pytest.raises(TypeError, match="labels"):
        fn(z, "0 1 2 0")
    if v.backend.name != "dask":  # a range check needs the values, which Dask does not give
        with pytest.raises(ValueError, match="labels"):
            fn(z, v.asarray(y + 1))
    if v.backend.name != "numpy":
        with pytest.raises(TypeError, match="labels"):
            fn(z, y)  # a NumPy array beside another library's logits


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bad_logits_and_axis(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    fn = getattr(xpsoftmax, name)
    y = v.asarray(np.array([0, 1]))
    with pytest.raises(ValueError, match="axis"):
        fn(v.asarray(np.zeros((2, 3))), y, axis=2)
    with pytest.raises(ValueError, match="axis"):
        fn(v.asarray(np.zeros((2, 3))), y, axis=(0, 1))
    with pytest.raises(ValueError, match="no sample"):
        fn(v.asarray(np.zeros((0, 3))), v.asarray(np.zeros(0, dtype=np.int64)))
    if v.backend.name in ("numpy", "torch"):
        with pytest.raises(TypeError, match="logits"):
            fn(v.asarray(np.zeros((2, 3), dtype=np.complex128)), y)


def test_bad_options() -> None:
    z, y = np.zeros((2, 3)), np.array([0, 1])
    with pytest.raises(TypeError, match="where"):
        xpsoftmax.fit_temperature(z, y, where=np.ones((2, 3)))
    with pytest.raises(ValueError, match="where"):
        xpsoftmax.fit_temperature(z, y, where=np.ones((3, 3), dtype=bool))
    for n_bins in (0, -1, 2.0, True, "15"):
        with pytest.raises(ValueError, match="n_bins"):
            xpsoftmax.calibration_error(z, y, n_bins=n_bins)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="n_bins"):
            xpsoftmax.calibration_curve(z, y, n_bins=n_bins)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="norm"):
        xpsoftmax.calibration_error(z, y, norm="l3")
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            xpsoftmax.calibration_error(z, y, temperature=t)
