"""The special-value table (spec: Special values) on every variant; what results keep of the input.

Every row of the table is one slice of a single batch, so each variant (compiled ones included)
runs each function once on all rows together; the oracle implements the table independently.
No warning may be emitted: pytest runs with ``filterwarnings = error``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
import pytest
from conftest import (
    FUNCTIONS,
    JACOBIANS,
    PRODUCTS,
    REDUCING,
    assert_within,
    call,
    dtype_name,
)
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import allowed_error, error_scale

from xpsoftmax import backends

INF, NAN = np.inf, np.nan
T, F = True, False

#: (name, slice of 4 logits, mask of the slice): one row of the spec's table each.
ROWS = [
    ("finite", [1.0, 2.0, 3.0, -1.0], [T, T, T, T]),
    ("some -inf", [0.0, -INF, 1.0, -INF], [T, T, T, T]),
    ("some excluded", [0.0, 5.0, 1.0, 9.0], [T, F, T, F]),
    ("all -inf", [-INF, -INF, -INF, -INF], [T, T, T, T]),
    ("all excluded", [1.0, 2.0, 3.0, 4.0], [F, F, F, F]),
    ("-inf and excluded", [-INF, 2.0, -INF, 4.0], [T, F, T, F]),
    ("one +inf", [INF, 0.0, 1.0, -INF], [T, T, T, T]),
    ("two +inf", [INF, INF, -INF, 3.0], [T, T, T, T]),
    ("three +inf", [INF, INF, INF, 3.0], [T, T, T, T]),
    ("+inf excluded", [INF, INF, 0.0, 1.0], [T, F, T, T]),
    ("NaN", [NAN, 0.0, 1.0, 2.0], [T, T, T, T]),
    ("NaN and +inf", [NAN, INF, 1.0, 2.0], [T, T, T, T]),
    ("NaN and -inf", [NAN, -INF, -INF, -INF], [T, T, T, T]),
    ("NaN excluded", [NAN, 0.0, 1.0, 2.0], [F, T, T, T]),
    ("NaN excluded, +inf", [NAN, INF, 1.0, NAN], [F, T, T, F]),
    ("NaN excluded, rest -inf", [NAN, -INF, -INF, -INF], [F, T, T, T]),
]
X = np.array([row[1] for row in ROWS])
WHERE = np.array([row[2] for row in ROWS])
ROW_NAMES = [row[0] for row in ROWS]


def check_rows(v: backends.Variant, name: str, dtype: str, temperature: float) -> None:
    x = oracle.round_to(X, dtype)
    t_seen = oracle.round_to(temperature, "float64" if dtype == "float64" else "float32")
    xb, wb = v.asarray(x, dtype=dtype), v.asarray(WHERE)
    u = np.linspace(-1.0, 1.0, X.size).reshape(X.shape)
    positional = [xb, v.asarray(u, dtype=dtype)] if name in PRODUCTS else [xb]
    result = call(
        v, name, *positional, array_kwargs={"where": wb}, axis=-1, temperature=temperature
    )
    assert dtype_name(result) == dtype
    got = np.asarray(v.to_numpy(result), dtype=np.float64)
    exact_fn = getattr(oracle, name)
    if name in PRODUCTS:
        exact = exact_fn(x, u, -1, t_seen, WHERE)
    else:
        exact = exact_fn(x, -1, t_seen, WHERE)
    bound = allowed_error(name, dtype, x, -1, t_seen, WHERE)
    scale = error_scale(name, x, u if name in PRODUCTS else None, -1, t_seen, WHERE, exact)
    for i, row in enumerate(ROW_NAMES):
        row_bound = np.broadcast_to(bound, exact.shape)[i]
        row_scale = None if scale is None else np.broadcast_to(scale, exact.shape)[i]
        assert_within(got[i], exact[i], dtype, row_bound, row_scale, what=f"{name} row {row!r}")


@pytest.mark.parametrize("temperature", [1.0, 0.37])
@pytest.mark.parametrize("name", REDUCING)
def test_special_value_table(variant: backends.Variant, name: str, temperature: float) -> None:
    check_rows(variant, name, "float32", temperature)


@pytest.mark.parametrize("dtype", backends.FLOAT_DTYPES)
@pytest.mark.parametrize("name", REDUCING)
def test_special_value_table_every_dtype(
    eager_variant: backends.Variant, name: str, dtype: str
) -> None:
    check_rows(eager_variant, name, dtype, 1.0)


@pytest.mark.parametrize("name", [*JACOBIANS, *PRODUCTS])
def test_special_values_of_jacobians_and_products(
    eager_variant: backends.Variant, name: str
) -> None:
    """The Jacobians and their products follow from the table's probabilities (NaN rows all NaN,
    rows with nothing in them all 0)."""
    check_rows(eager_variant, name, "float64", 1.0)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", REDUCING)
def test_length_zero_axis(variant: backends.Variant, name: str, keepdims: bool) -> None:
    x = np.zeros((3, 0))
    static: dict[str, Any] = {"axis": -1}
    if name == "logsumexp":
        static["keepdims"] = keepdims
        exact = oracle.logsumexp(x, -1, keepdims=keepdims)
    else:
        exact = getattr(oracle, name)(x, -1)
    got = np.asarray(v_numpy := variant.to_numpy(call(variant, name, variant.asarray(x), **static)))
    assert v_numpy.shape == exact.shape
    assert_within(got, exact, "float64", 0.0)


def test_nan_under_an_excluded_entry_never_leaks(eager_variant: backends.Variant) -> None:
    """The same slice with and without a NaN (or +inf) at an excluded entry gives identical results."""
    v = eager_variant
    clean = np.array([[0.5, -1.0, 0.0, 2.0]])
    where = np.array([[T, T, F, T]])
    for poison in (NAN, INF):
        dirty = clean.copy()
        dirty[0, 2] = poison
        for name in FUNCTIONS:
            positional: list[Any] = []
            if name in PRODUCTS:
                positional = [v.asarray(np.array([[1.0, 2.0, poison, 3.0]]))]
            elif name == "cross_entropy":
                positional = [v.asarray(np.array([1]))]
            results = [
                v.to_numpy(
                    call(
                        v,
                        name,
                        v.asarray(a),
                        *positional,
                        array_kwargs={"where": v.asarray(where)},
                        axis=-1,
                    )
                )
                for a in (clean, dirty)
            ]
            np.testing.assert_array_equal(results[1], results[0], err_msg=f"{name}, {poison}")


# -- what results keep ---------------------------------------------------------------------------------


def _functions_for(v: backends.Variant) -> tuple[str, ...]:
    """Every function on eager variants; compiled ones (seconds per compilation) run the reducing
    functions here, and every function in test_values.py::test_compiled."""
    return REDUCING if v.compiled else FUNCTIONS


def _call_functions(v: backends.Variant, x: Any) -> dict[str, Any]:
    floating = dtype_name(x).startswith(("float", "bfloat"))
    u = v.asarray(np.ones((2, 3)), dtype=dtype_name(x) if floating else None)
    target = v.asarray(np.array([0, 2]))
    out = {}
    for name in _functions_for(v):
        extra = [u] if name in PRODUCTS else [target] if name == "cross_entropy" else []
        out[name] = call(v, name, x, *extra, axis=-1)
    return out


def _expected_shape(name: str) -> tuple[int, ...]:
    shapes = {"logsumexp": (2,), "cross_entropy": ()}
    return shapes.get(name, (2, 3, 3) if name in JACOBIANS else (2, 3))


def test_result_keeps_namespace_device_dtype_and_shape(variant: backends.Variant) -> None:
    """float16 and bfloat16 (computed in float32) come back in their own dtype, like the rest."""
    dtypes = variant.dtypes()
    if variant.compiled:
        dtypes = tuple(d for d in dtypes if d in ("float16", "bfloat16", "float32"))
    for dtype in dtypes:
        x = variant.asarray(np.array([[0.5, -1.0, 2.0], [3.0, 1.0, -2.0]]), dtype=dtype)
        for name, result in _call_functions(variant, x).items():
            assert array_api_compat.array_namespace(result) is array_api_compat.array_namespace(x)
            assert variant.backend.device_of(result) == variant.device, name
            assert dtype_name(result) == dtype, (name, dtype)
            assert tuple(result.shape) == _expected_shape(name), name


@pytest.mark.compiled_dtypes("int64")
@pytest.mark.parametrize("dtype", ["int32", "int64", "bool"])
def test_integer_and_bool_input_give_the_default_float(
    variant: backends.Variant, dtype: str
) -> None:
    xp = variant.xp
    host = np.array([[1, 0, 1], [0, 0, 1]])
    x = variant.asarray(host, dtype=dtype)
    info = xp.__array_namespace_info__()
    default = info.default_dtypes(device=array_api_compat.device(x))["real floating"]
    for name, result in _call_functions(variant, x).items():
        assert result.dtype == default, (name, result.dtype, default)
        if name in REDUCING:
            exact = getattr(oracle, name)(host.astype(np.float64), -1)
            got = np.asarray(variant.to_numpy(result), dtype=np.float64)
            assert_within(got, exact, dtype_name(result), 4.0)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.25])
@pytest.mark.parametrize("target_column", [0, 1, 3])
def test_special_values_of_cross_entropy(
    variant: backends.Variant, target_column: int, label_smoothing: float
) -> None:
    """Per-sample cross-entropy of every row of the table, the target at each kind of entry
    (+inf, finite, -inf, NaN, excluded), gathered from the logits: against the oracle."""
    target = np.full(X.shape[0], target_column)
    result = call(
        variant,
        "cross_entropy",
        variant.asarray(X),
        variant.asarray(target, dtype="int64"),
        array_kwargs={"where": variant.asarray(WHERE)},
        axis=-1,
        reduction="none",
        label_smoothing=label_smoothing,
    )
    got = np.asarray(variant.to_numpy(result), dtype=np.float64)
    exact = oracle.cross_entropy(
        X, target, -1, 1.0, WHERE, label_smoothing=label_smoothing, reduction="none"
    )
    bound = allowed_error("cross_entropy", "float64", X, -1, 1.0, WHERE)
    for i, row in enumerate(ROW_NAMES):
        assert_within(got[i], exact[i], "float64", bound, what=f"cross_entropy row {row!r}")
