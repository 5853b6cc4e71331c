"""Values of every public function against the mpmath oracle, on every backend variant.

The full product of variants, dtypes, functions, shapes, temperatures and masks is too big to run,
so each dimension is covered fully against a base case and the core functions take a moderate cross
product: the reducing functions get every shape/axis with every temperature/mask combination in
float32 on the eager variants; every function gets every dtype on one hard case (3-d, a mask, a
temperature); compiled variants run every function once (compilation costs seconds).
Bounds are documented in conftest.py, in one place.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from conftest import (
    ALL_VARIANTS,
    FUNCTIONS,
    JACOBIANS,
    PRODUCTS,
    assert_within,
    call,
    dtype_name,
    mask_for,
    temperature_for,
)
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import allowed_error, error_scale

from xpsoftmax import backends

#: (shape, axis): 1-d, 3-d, negative, tuple, None, a length-1 and a length-0 axis.
SHAPES_AXES = [
    ((7,), -1),
    ((2, 3, 4), 1),
    ((2, 3, 4), -2),
    ((2, 3, 4), (0, 2)),
    ((2, 3, 4), None),
    ((3, 1, 2), 1),
    ((3, 0, 2), 1),
]
SINGLE_AXIS = [sa for sa in SHAPES_AXES if isinstance(sa[1], int)]
#: (temperature, mask): the base, a scalar temperature with a mask, per-slice temperatures with
#: and without a mask.
T_MASKS = [(1.0, None), (0.37, "random"), ("array", None), ("array", "random")]
DTYPES = list(backends.FLOAT_DTYPES)
REDUCING_CASES = ["softmax", "log_softmax", "logsumexp", "logsumexp-keepdims"]
COMPILED_VARIANTS = [p for p in ALL_VARIANTS if p.values[0].compiled]


def run_case(
    v: backends.Variant,
    case: str,
    dtype: str,
    shape: tuple[int, ...],
    axis: Any,
    t_kind: Any,
    mask_kind: Any,
    rng: np.random.Generator,
) -> float:
    """Run one function on one input and check it against the oracle; returns the max error."""
    name, _, option = case.partition("-")
    x = oracle.round_to(rng.normal(size=shape) * 3.0, dtype)
    t, t_seen = temperature_for(t_kind, shape, axis, dtype, rng)
    where = mask_for(mask_kind, shape, rng)
    arrays = [v.asarray(x, dtype=dtype)]
    u = None
    static: dict[str, Any] = {"axis": axis}
    kwargs: dict[str, Any] = {"where": None if where is None else v.asarray(where)}
    if isinstance(t, np.ndarray):
        kwargs["temperature"] = v.asarray(t, dtype=dtype)
    else:
        static["temperature"] = t
    exact_fn = getattr(oracle, name)
    if name == "logsumexp":
        static["keepdims"] = option == "keepdims"
        exact = exact_fn(x, axis, t_seen, where, keepdims=static["keepdims"])
    elif name in PRODUCTS:
        u = oracle.round_to(rng.normal(size=shape), dtype)
        arrays.append(v.asarray(u, dtype=dtype))
        exact = exact_fn(x, u, axis, t_seen, where)
    else:
        exact = exact_fn(x, axis, t_seen, where)
    result = call(v, name, *arrays, array_kwargs=kwargs, **static)
    assert dtype_name(result) == dtype
    got = np.asarray(v.to_numpy(result), dtype=np.float64)
    bound = allowed_error(name, dtype, x, axis, t_seen, where)
    scale = error_scale(name, x, u, axis, t_seen, where, exact)
    if name == "logsumexp" and static["keepdims"] and scale is not None:
        scale = np.reshape(scale, exact.shape)
    return assert_within(got, exact, dtype, bound, scale, what=f"{case} {dtype} {shape} {axis}")


@pytest.mark.parametrize(("t_kind", "mask_kind"), T_MASKS)
@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES)
@pytest.mark.parametrize("case", REDUCING_CASES)
def test_reducing_functions(
    eager_variant: backends.Variant,
    case: str,
    shape: tuple[int, ...],
    axis: Any,
    t_kind: Any,
    mask_kind: Any,
    rng: np.random.Generator,
) -> None:
    run_case(eager_variant, case, "float32", shape, axis, t_kind, mask_kind, rng)


@pytest.mark.parametrize(("t_kind", "mask_kind"), [T_MASKS[0], T_MASKS[3]])
@pytest.mark.parametrize(("shape", "axis"), SINGLE_AXIS)
@pytest.mark.parametrize("name", [*JACOBIANS, *PRODUCTS])
def test_jacobians_and_products(
    eager_variant: backends.Variant,
    name: str,
    shape: tuple[int, ...],
    axis: int,
    t_kind: Any,
    mask_kind: Any,
    rng: np.random.Generator,
) -> None:
    run_case(eager_variant, name, "float32", shape, axis, t_kind, mask_kind, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [*REDUCING_CASES, *JACOBIANS, *PRODUCTS])
def test_every_dtype(
    eager_variant: backends.Variant, case: str, dtype: str, rng: np.random.Generator
) -> None:
    for t_kind, mask_kind in ((1.0, None), ("array", "random")):
        run_case(eager_variant, case, dtype, (2, 3, 5), 1, t_kind, mask_kind, rng)


@pytest.mark.parametrize("case", [*REDUCING_CASES, *JACOBIANS, *PRODUCTS])
@pytest.mark.parametrize("variant", COMPILED_VARIANTS)
def test_compiled(variant: backends.Variant, case: str, rng: np.random.Generator) -> None:
    """Each function compiled once (jax.jit, torch.compile(fullgraph=True)) on a hard case."""
    run_case(variant, case, "float32", (2, 3, 4), 1, "array", "random", rng)


# -- cross_entropy -----------------------------------------------------------------------------------


def run_cross_entropy(
    v: backends.Variant,
    dtype: str,
    target_kind: str,
    label_smoothing: float,
    reduction: str,
    t_kind: Any,
    mask_kind: Any,
    rng: np.random.Generator,
    shape: tuple[int, ...] = (3, 2, 5),
    axis: int = -1,
) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Check cross_entropy against the oracle; returns (result, logits, target, target on host)."""
    logits = oracle.round_to(rng.normal(size=shape) * 3.0, dtype)
    n = shape[axis]
    if target_kind == "index":
        batch = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
        target_host = rng.integers(0, n, size=batch)
        target = v.asarray(target_host, dtype="int64")
    else:
        raw = rng.random(shape)
        target_host = oracle.round_to(raw / raw.sum(axis=axis, keepdims=True), dtype)
        target = v.asarray(target_host, dtype=dtype)
    t, t_seen = temperature_for(t_kind, shape, axis, dtype, rng)
    where = mask_for(mask_kind, shape, rng)
    kwargs: dict[str, Any] = {"where": None if where is None else v.asarray(where)}
    static: dict[str, Any] = {
        "axis": axis,
        "label_smoothing": label_smoothing,
        "reduction": reduction,
    }
    if isinstance(t, np.ndarray):
        kwargs["temperature"] = v.asarray(t, dtype=dtype)
    else:
        static["temperature"] = t
    x = v.asarray(logits, dtype=dtype)
    result = call(v, "cross_entropy", x, target, array_kwargs=kwargs, **static)
    assert dtype_name(result) == dtype
    exact = oracle.cross_entropy(
        logits, target_host, axis, t_seen, where, label_smoothing, reduction
    )
    got = np.asarray(v.to_numpy(result), dtype=np.float64)
    bound = allowed_error("cross_entropy", dtype, logits, axis, t_seen, where)
    assert_within(got, np.asarray(exact, dtype=object), dtype, bound, what="cross_entropy")
    return result, logits, target, target_host


#: (target kind, label smoothing, reduction): every combination the loss tests run.
LOSS_OPTIONS = [
    pytest.param(options, id="-".join(map(str, options)))
    for options in itertools.product(
        ["index", "probabilities"], [0.0, 0.1], ["none", "sum", "mean"]
    )
]


@pytest.mark.parametrize(("t_kind", "mask_kind"), [T_MASKS[0], T_MASKS[3]])
@pytest.mark.parametrize("options", LOSS_OPTIONS)
def test_cross_entropy(
    eager_variant: backends.Variant,
    options: tuple[str, float, str],
    t_kind: Any,
    mask_kind: Any,
    rng: np.random.Generator,
) -> None:
    run_cross_entropy(eager_variant, "float32", *options, t_kind, mask_kind, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_cross_entropy_dtypes_and_axis(
    eager_variant: backends.Variant, target_kind: str, dtype: str, rng: np.random.Generator
) -> None:
    run_cross_entropy(
        eager_variant, dtype, target_kind, 0.2, "mean", "array", "random", rng, axis=1
    )


@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
@pytest.mark.parametrize("variant", COMPILED_VARIANTS)
def test_cross_entropy_compiled(
    variant: backends.Variant, target_kind: str, rng: np.random.Generator
) -> None:
    run_cross_entropy(variant, "float32", target_kind, 0.1, "mean", "array", "random", rng)


@pytest.mark.parametrize("options", LOSS_OPTIONS)
def test_cross_entropy_matches_framework_reference(
    eager_variant: backends.Variant, options: tuple[str, float, str], rng: np.random.Generator
) -> None:
    """Against the framework's own cross-entropy (torch.nn.functional.cross_entropy, ...)."""
    v = eager_variant
    _, label_smoothing, reduction = options
    for axis in (-1, 1):
        result, logits, target, _ = run_cross_entropy(
            v, "float64", *options, 1.0, None, rng, axis=axis
        )
        ref = v.backend.ref_cross_entropy(
            v.asarray(logits, dtype="float64"),
            target,
            axis=axis,
            label_smoothing=label_smoothing,
            reduction=reduction,
        )
        # The framework loses digits where a loss is near 0, hence the absolute part.
        atol = 1e-14 * float(np.max(np.abs(logits)))
        np.testing.assert_allclose(v.to_numpy(result), v.to_numpy(ref), rtol=1e-13, atol=atol)


# -- against the framework's own functions -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES[:5])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_never_worse_than_framework_reference(
    eager_variant: backends.Variant,
    name: str,
    shape: tuple[int, ...],
    axis: Any,
    dtype: str,
    rng: np.random.Generator,
) -> None:
    """Our largest error is at most the framework's own (SciPy, jax.nn, torch), up to rounding
    luck, and the two agree; log_softmax's spread of logits includes a dominant one."""
    v = eager_variant
    x = rng.normal(size=shape) * 3.0
    x.flat[0] = 40.0  # one dominant logit: log_softmax there is near 0
    x = oracle.round_to(x, dtype)
    xb = v.asarray(x, dtype=dtype)
    ours = np.asarray(v.to_numpy(call(v, name, xb, axis=axis)), dtype=np.float64)
    ref = np.asarray(v.to_numpy(getattr(v.backend, f"ref_{name}")(xb, axis)), dtype=np.float64)
    exact = getattr(oracle, name)(x, axis)
    scale = error_scale(name, x, None, axis, 1.0, None, exact)
    our_error = assert_within(
        ours, exact, dtype, allowed_error(name, dtype, x, axis, 1.0, None), scale, what=name
    )
    ref_error = float(np.max(oracle.ulp_error(ref, exact, dtype)))
    assert our_error <= max(2.0 * ref_error, ref_error + 2.0)


# -- accuracy cases (spec: Accuracy) ----------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "x",
    [[0.0, -40.0], [0.0, -20.0, -30.0], [5.0, 5.0, -30.0], [1e4, 1e4 - 50.0, -1e4]],
    ids=["dominant", "dominant3", "tied", "large"],
)
def test_log_softmax_keeps_relative_accuracy_near_zero(
    eager_variant: backends.Variant, x: list[float], dtype: str
) -> None:
    v = eager_variant
    host = oracle.round_to(np.array(x), dtype)
    xb = v.asarray(host, dtype=dtype)
    for name in ("log_softmax", "logsumexp", "softmax"):
        got = np.asarray(v.to_numpy(call(v, name, xb, axis=-1)), dtype=np.float64)
        exact = getattr(oracle, name)(host)
        bound = allowed_error(name, dtype, host, -1, 1.0, None)
        scale = error_scale(name, host, None, -1, 1.0, None, exact)
        assert_within(got, exact, dtype, bound, scale, what=name)


def test_large_shared_offset_costs_nothing(eager_variant: backends.Variant) -> None:
    v = eager_variant
    logits = v.asarray(np.array([[1e8, 1e8]]), dtype="float64")
    target = v.asarray(np.array([0]), dtype="int64")
    loss = float(v.to_numpy(call(v, "cross_entropy", logits, target)))
    assert loss == float(oracle.cross_entropy(np.array([[1e8, 1e8]]), np.array([0])))


def test_broadcast_mask_temperature_and_tangent(
    eager_variant: backends.Variant, rng: np.random.Generator
) -> None:
    """where, temperature and v given with fewer dimensions broadcast against x."""
    v = eager_variant
    x = rng.normal(size=(3, 4, 5))
    where = rng.random((4, 5)) < 0.7
    where[:, 0] = True
    t = rng.uniform(0.5, 2.0, size=(4, 1))
    u = rng.normal(size=(5,))
    xb, wb, tb = v.asarray(x), v.asarray(where), v.asarray(t)
    kwargs = {"where": wb, "temperature": tb}
    for name in ("softmax", "log_softmax", "logsumexp", *JACOBIANS):
        got = np.asarray(v.to_numpy(call(v, name, xb, array_kwargs=kwargs, axis=-1)))
        exact = getattr(oracle, name)(x, -1, t, where)
        scale = error_scale(name, x, None, -1, t, where, exact)
        assert_within(got, exact, "float64", allowed_error(name, "float64", x, -1, t, where), scale)
    for name in PRODUCTS:
        got = np.asarray(v.to_numpy(call(v, name, xb, v.asarray(u), array_kwargs=kwargs, axis=-1)))
        exact = getattr(oracle, name)(x, u, -1, t, where)
        scale = error_scale(name, x, u, -1, t, where, exact)
        assert_within(got, exact, "float64", allowed_error(name, "float64", x, -1, t, where), scale)


# -- inputs are never modified -------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_inputs_are_never_modified(
    eager_variant: backends.Variant, name: str, rng: np.random.Generator
) -> None:
    """Every input (x, v/g, target, where, temperature) is unchanged; NumPy inputs are also made
    read-only (the numpy:readonly idea), so an in-place write raises instead of passing unseen."""
    v = eager_variant
    shape = (3, 4)
    host = {
        "x": rng.normal(size=shape),
        "u": rng.normal(size=shape),
        "where": rng.random(shape) < 0.7,
        "temperature": rng.uniform(0.5, 2.0, size=(3, 1)),
        "target": rng.integers(0, 4, size=(3,)),
    }
    arrays = {k: v.asarray(a) for k, a in host.items()}
    if v.backend.name == "numpy":
        for a in arrays.values():
            a.flags.writeable = False
    before = {k: v.to_numpy(a).copy() for k, a in arrays.items()}
    kwargs = {"where": arrays["where"], "temperature": arrays["temperature"]}
    positional = [arrays["x"]]
    if name in PRODUCTS:
        positional.append(arrays["u"])
    elif name == "cross_entropy":
        positional.append(arrays["target"])
    v.synchronize(call(v, name, *positional, array_kwargs=kwargs, axis=-1))
    for k, a in arrays.items():
        np.testing.assert_array_equal(v.to_numpy(a), before[k], err_msg=f"{name} modified {k}")
