"""The error table (spec: Errors), row by row, on every eager backend variant.

Each error must be the documented type and its message must name the offending argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import FUNCTIONS, JACOBIANS, PRODUCTS, REDUCING, call

from xpsoftmax import backends

SINGLE_AXIS = (*JACOBIANS, *PRODUCTS, "cross_entropy")


def operands(v: backends.Variant, name: str, shape: tuple[int, ...] = (2, 3)) -> list[Any]:
    """The positional arrays after x that function `name` needs (v/g or a target)."""
    if name in PRODUCTS:
        return [v.asarray(np.ones(shape))]
    if name == "cross_entropy":
        return [v.asarray(np.zeros(shape[:-1], dtype=np.int64))]
    return []


def x_of(v: backends.Variant, shape: tuple[int, ...] = (2, 3), dtype: str = "float64") -> Any:
    return v.asarray(np.arange(float(np.prod(shape))).reshape(shape), dtype=dtype)


def raises(
    v: backends.Variant, name: str, error: type[Exception], match: str, *args: Any, **kw: Any
) -> None:
    with pytest.raises(error, match=match):
        call(v, name, *args, **kw)


@pytest.mark.parametrize("name", [f for f in FUNCTIONS if f != "logsumexp"])  # (it takes complex)
def test_complex_input(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    x = v.asarray(np.ones((2, 3), dtype=np.complex128))
    raises(v, name, TypeError, r"\b(x|logits)\b.*(real|complex)", x, *operands(v, name))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_where_not_boolean(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    for bad in (np.ones((2, 3)), np.ones((2, 3), dtype=np.int64)):
        where = v.asarray(bad)
        raises(
            v, name, TypeError, "where", x_of(v), *operands(v, name), array_kwargs={"where": where}
        )


def _foreign(v: backends.Variant, a: np.ndarray) -> Any:
    """`a` as an array of another library than v's (torch for NumPy, NumPy for the others)."""
    if v.backend.name == "numpy":
        import torch

        return torch.asarray(a)
    return a


TWO_NAMESPACE_CASES = [
    (name, argument)
    for name in FUNCTIONS
    for argument in ("where", "temperature", "operand")
    if argument != "operand" or name in (*PRODUCTS, "cross_entropy")
]


@pytest.mark.parametrize(("name", "argument"), TWO_NAMESPACE_CASES)
def test_arrays_from_two_namespaces(
    eager_variant: backends.Variant, name: str, argument: str
) -> None:
    v = eager_variant
    x = x_of(v)
    kwargs: dict[str, Any] = {}
    extra = operands(v, name)
    if argument == "where":
        kwargs["where"] = _foreign(v, np.ones((2, 3), dtype=bool))
    elif argument == "temperature":
        kwargs["temperature"] = _foreign(v, np.ones((2, 1)))
    else:
        extra = [_foreign(v, v.to_numpy(extra[0]))]
        argument = "v" if "jvp" in name else "g" if "vjp" in name else "target"
    raises(v, name, TypeError, rf"\b{argument}\b", x, *extra, array_kwargs=kwargs)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bad_axis(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    x, extra = x_of(v), operands(v, name)
    for axis in (2, -3):
        raises(v, name, ValueError, "axis", x, *extra, axis=axis)
    bad_tuples = [(0, 1)] if name in SINGLE_AXIS else [(0, 0), (1, -1), (0, 2)]
    for axis in bad_tuples:
        raises(v, name, ValueError, "axis", x, *extra, axis=axis)
    if name in SINGLE_AXIS:
        raises(v, name, ValueError, "axis", x, *extra, axis=None)


BAD_TEMPERATURES = (0.0, -1.0, float("nan"), float("inf"), float("-inf"))


def raises_when_values_known(
    v: backends.Variant, name: str, error: type[Exception], match: str, *args: Any, **kw: Any
) -> None:
    """Array values are checked only when known (spec: When a value is known). Eager arrays (JAX's
    too) are checked; Dask arrays are lazy, so there the call must neither raise nor compute: the
    result stays lazy."""
    if v.backend.name != "dask":
        raises(v, name, error, match, *args, **kw)
        return
    import dask
    import dask.array

    def refuse(*_: Any, **__: Any) -> Any:
        raise AssertionError("a value check computed the Dask graph")

    with dask.config.set(scheduler=refuse):
        result = call(v, name, *args, **kw)
    assert isinstance(result, dask.array.Array)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_bad_temperature(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    x, extra = x_of(v), operands(v, name)
    for t in BAD_TEMPERATURES:
        raises(v, name, ValueError, "temperature", x, *extra, axis=-1, temperature=t)


@pytest.mark.parametrize("name", ["softmax", "log_softmax_vjp", "cross_entropy"])
def test_bad_temperature_array(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    x, extra = x_of(v), operands(v, name)
    for t in BAD_TEMPERATURES:
        array = v.asarray(np.array([[1.0], [t]]))
        kwargs = {"array_kwargs": {"temperature": array}}
        raises_when_values_known(v, name, ValueError, "temperature", x, *extra, **kwargs)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_where_of_wrong_shape(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    x, extra = x_of(v), operands(v, name)
    for shape in ((3, 2), (2, 2), (4,), (1, 2, 3)):
        where = v.asarray(np.ones(shape, dtype=bool))
        raises(v, name, ValueError, "where", x, *extra, array_kwargs={"where": where})


@pytest.mark.parametrize("name", PRODUCTS)
def test_tangent_of_wrong_shape(eager_variant: backends.Variant, name: str) -> None:
    v = eager_variant
    argument = "v" if "jvp" in name else "g"
    for shape in ((3, 2), (2, 2), (4,), (1, 2, 3)):
        raises(v, name, ValueError, rf"\b{argument}\b", x_of(v), v.asarray(np.ones(shape)), axis=-1)


def test_target_of_wrong_shape(eager_variant: backends.Variant) -> None:
    v = eager_variant
    x = x_of(v)
    for target in (np.zeros((3,), dtype=np.int64), np.zeros((2, 3), dtype=np.int64)):
        raises(v, "cross_entropy", ValueError, "target", x, v.asarray(target))
    for target in (np.full((2,), 0.5), np.full((2, 2), 0.5), np.full((3, 3), 0.5)):
        raises(v, "cross_entropy", ValueError, "target", x, v.asarray(target))


def test_class_index_out_of_range(eager_variant: backends.Variant) -> None:
    v = eager_variant
    for target in ([0, 3], [-1, 0]):
        target = v.asarray(np.array(target))
        raises_when_values_known(v, "cross_entropy", ValueError, "target", x_of(v), target)


def test_bad_reduction_and_label_smoothing(eager_variant: backends.Variant) -> None:
    v = eager_variant
    x, target = x_of(v), v.asarray(np.array([0, 1]))
    for reduction in ("avg", "", "MEAN", None):
        raises(v, "cross_entropy", ValueError, "reduction", x, target, reduction=reduction)
    for eps in (-0.1, 1.5, float("nan"), float("inf")):
        raises(v, "cross_entropy", ValueError, "label_smoothing", x, target, label_smoothing=eps)


@pytest.mark.parametrize("name", REDUCING)
def test_errors_under_jit_are_the_same(name: str) -> None:
    """Checks on shapes, dtypes, axes and Python temperatures do not need values: they also
    raise under jax.jit."""
    v = backends.variant("jax.jit")
    x = x_of(v)
    raises(v, name, ValueError, "axis", x, axis=5)
    raises(v, name, ValueError, "temperature", x, temperature=0.0)
    raises(v, name, TypeError, "where", x, array_kwargs={"where": v.asarray(np.ones((2, 3)))})
