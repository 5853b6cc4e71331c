"""No input, valid or not, makes a public function warn (spec: Errors).

Each known public function is called a few hundred times with random arguments, seeded:
random shapes and dtypes (integer, bool, float16, complex), NaN and infinite entries, logits
spanning the float range, bad axes, temperatures that are tiny, huge for the dtype, zero,
negative, NaN or per slice, masks of every kind, tangents and cotangents holding inf or NaN,
and logsumexp weights that are negative, zero or infinite. Every warning is an error. A call
may return, or raise TypeError or ValueError whose message names one of its arguments;
nothing else.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xpsoftmax

#: The functions this test knows how to call, with the names of their array arguments
#: besides the first. Functions added to the library later are checked by their own tests.
KNOWN = {
    "softmax": (),
    "log_softmax": (),
    "logsumexp": (),
    "softmax_jacobian": (),
    "log_softmax_jacobian": (),
    "softmax_jvp": ("v",),
    "softmax_vjp": ("g",),
    "log_softmax_jvp": ("v",),
    "log_softmax_vjp": ("g",),
    "cross_entropy": ("target",),
}
SINGLE_AXIS = {name for name in KNOWN if name not in ("softmax", "log_softmax", "logsumexp")}
CALLS_PER_FUNCTION = 40


def test_known_functions_are_public() -> None:
    assert set(KNOWN) <= set(xpsoftmax.__all__)


def _special_values(dtype: str) -> list[float]:
    big = 1e308 if dtype == "float64" else 3e38
    return [np.nan, np.inf, -np.inf, big, -big, 0.0]


def _array(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """Random values of `dtype`, with some special values among the floats."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype in ("int32", "int64"):
        return rng.integers(-5, 5, shape).astype(dtype)
    values = rng.normal(0.0, float(rng.choice([1.0, 30.0, 1e4])), shape)
    if rng.random() < 0.6 and values.size:
        spots = rng.random(shape) < 0.3
        picks = rng.choice(_special_values("float64"), size=shape)
        values = np.where(spots, picks, values)
    if dtype.startswith("complex"):
        values = values + 1j * rng.normal(0.0, 3.0, shape)
    return values.astype(dtype)


def _axis(rng: np.random.Generator, ndim: int, single: bool) -> Any:
    choices: list[Any] = [-1, 0, ndim, -ndim - 1, None, (0,), (0, 0), (-1, 0), 1.5]
    if ndim:
        choices += [int(rng.integers(-ndim, ndim))] * 4
    return choices[int(rng.integers(len(choices)))]


def _temperature(rng: np.random.Generator, shape: tuple[int, ...], axis: Any) -> Any:
    kind = int(rng.integers(12))
    scalars: list[Any] = [1.0, 0.37, 1e-300, 1e300, 1e-30, 0.0, -1.0, np.nan, np.inf, 3, True]
    if kind < len(scalars):
        return scalars[kind]
    axes = range(len(shape)) if axis is None else (axis,) if isinstance(axis, int) else axis
    try:
        reduced = tuple(
            1 if i in [a % len(shape) for a in axes] else n for i, n in enumerate(shape)
        )
    except (TypeError, ZeroDivisionError):
        reduced = shape
    values = rng.choice([0.5, 2.0, 1e-300, 1e300, 1e-40, 0.0, -1.0, np.nan], size=reduced)
    return values.astype(rng.choice(["float64", "float32", "int64"]))


def _where(rng: np.random.Generator, shape: tuple[int, ...]) -> Any:
    kind = int(rng.integers(6))
    if kind < 3:
        return None
    if kind == 3:
        return rng.random(shape) < 0.7
    if kind == 4:
        return (rng.random(shape) < 0.7).astype("int32")  # not boolean: TypeError
    return rng.random((*shape, 2)) < 0.5  # does not broadcast: ValueError


def _random_call(name: str, rng: np.random.Generator) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional arrays (NumPy) and keyword arguments for one call of `name`."""
    ndim = int(rng.integers(0, 4))
    shape = tuple(int(n) for n in rng.integers(0, 5, ndim))
    dtypes = ["float64", "float32", "float16", "int64", "bool", "complex128"]
    dtype = str(rng.choice(dtypes, p=[0.35, 0.3, 0.1, 0.1, 0.05, 0.1]))
    x = _array(rng, shape, dtype)
    axis = _axis(rng, ndim, name in SINGLE_AXIS)
    kwargs: dict[str, Any] = {"axis": axis}
    if rng.random() < 0.6:
        kwargs["temperature"] = _temperature(rng, shape, axis)
    if (where := _where(rng, shape)) is not None:
        kwargs["where"] = where
    arrays: tuple[Any, ...] = (x,)
    if KNOWN[name] in (("v",), ("g",)):
        vector_shape = shape if rng.random() < 0.85 else (*shape, 3)
        vector = _array(rng, vector_shape, str(rng.choice(["float64", "float32", "int64"])))
        arrays += (vector,)
    if name == "logsumexp":
        kwargs["keepdims"] = bool(rng.random() < 0.3)
        kwargs["return_sign"] = bool(rng.random() < 0.4)
        if rng.random() < 0.6:
            b_shape = shape[int(rng.integers(0, ndim + 1)) :] if rng.random() < 0.8 else (7,)
            b = rng.choice([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0, np.inf, -np.inf, np.nan], size=b_shape)
            kwargs["b"] = b.astype(str(rng.choice(["float64", "float32", "int64"])))
    if name == "cross_entropy":
        arrays += (_target(rng, x, axis),)
        kwargs["label_smoothing"] = float(rng.choice([0.0, 0.1, 1.0, -0.5, 2.0]))
        kwargs["reduction"] = str(rng.choice(["mean", "sum", "none", "average"]))
        parameters = inspect.signature(xpsoftmax.cross_entropy).parameters
        n = x.shape[axis] if isinstance(axis, int) and -ndim <= axis < ndim else 3
        if "weight" in parameters and rng.random() < 0.3:
            kwargs["weight"] = rng.choice([0.0, 1.0, 2.0, np.inf], size=int(rng.choice([n, n + 1])))
        if "ignore_index" in parameters and rng.random() < 0.3:
            kwargs["ignore_index"] = int(rng.integers(-2, 3))
    return arrays, kwargs


def _target(rng: np.random.Generator, x: np.ndarray, axis: Any) -> np.ndarray:
    if isinstance(axis, int) and -x.ndim <= axis < x.ndim and rng.random() < 0.6:
        batch = tuple(n for i, n in enumerate(x.shape) if i != axis % x.ndim)
        return rng.integers(-1, x.shape[axis] + 1, batch)  # some out of range
    probabilities = rng.random(x.shape)
    if rng.random() < 0.3 and probabilities.size:
        probabilities.flat[0] = rng.choice([np.nan, np.inf, -1.0])
    return probabilities


def _to(backend: str) -> Callable[[Any], Any]:
    if backend == "numpy":
        return lambda a: a
    if backend == "array_api_strict":
        xp = pytest.importorskip("array_api_strict")

        def convert(a: Any) -> Any:
            if isinstance(a, np.ndarray) and a.dtype == np.float16:
                a = a.astype(np.float32)  # (array-api-strict has no float16)
            return xp.asarray(a) if isinstance(a, np.ndarray) else a

        return convert
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return lambda a: torch.asarray(a) if isinstance(a, np.ndarray) else a
    jnp = pytest.importorskip("jax.numpy")
    return lambda a: jnp.asarray(a) if isinstance(a, np.ndarray) else a


ARGUMENT_NAMES = re.compile(
    r"\b(x|logits|axis|temperature|where|b|v|g|target|weight|label_smoothing|reduction|"
    r"ignore_index|return_sign|keepdims)\b"
)


def _call_silently(
    function: Callable[..., Any], arrays: tuple[Any, ...], kwargs: dict[str, Any], described: str
) -> str | None:
    """Call with warnings as errors: None if it returned, the message of a TypeError or
    ValueError; anything else (a warning included) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            function(*arrays, **kwargs)
        except (TypeError, ValueError) as error:
            return str(error)
        except Exception as error:
            raise AssertionError(f"{described} raised {error!r}") from error
    return None


@pytest.mark.parametrize(
    ("backend", "seed", "calls"),
    [
        ("numpy", 0, CALLS_PER_FUNCTION),
        ("array_api_strict", 1, CALLS_PER_FUNCTION),
        ("torch", 2, CALLS_PER_FUNCTION // 2),
        ("jax.numpy", 3, 4),
    ],
)
def test_no_warning_for_any_input(backend: str, seed: int, calls: int) -> None:
    convert = _to(backend)
    rng = np.random.default_rng(seed)
    for name in KNOWN:
        function = getattr(xpsoftmax, name)
        for _ in range(calls):
            with np.errstate(all="ignore"):  # (making the test data may overflow; not calling)
                arrays, kwargs = _random_call(name, rng)
            arrays = tuple(convert(a) for a in arrays)
            kwargs = {k: convert(v) for k, v in kwargs.items()}
            described = f"{name}(shapes {[getattr(a, 'shape', a) for a in arrays]}, {kwargs!r})"
            message = _call_silently(function, arrays, kwargs, described)
            assert message is None or ARGUMENT_NAMES.search(message), f"{described}: {message}"


@pytest.mark.parametrize(
    ("logits", "target", "label_smoothing"),
    [(np.zeros((2, 0)), np.zeros((2, 0)), 0.1), (np.zeros(2), np.array([np.inf, 0.0]), 1.0)],
)
def test_cross_entropy_label_smoothing_edge_cases(
    logits: np.ndarray, target: np.ndarray, label_smoothing: float
) -> None:
    arguments = (logits, target)
    message = _call_silently(
        xpsoftmax.cross_entropy, arguments, {"label_smoothing": label_smoothing}, "cross_entropy"
    )
    assert message is None or ARGUMENT_NAMES.search(message)
