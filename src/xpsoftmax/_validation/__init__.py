"""Input checking and normalisation, done once for every public function: the one validator.

`prepare` turns the public arguments into a `Prepared` record: the namespace, the input in
the dtype we compute in, the reduced axes as a sorted tuple, the temperature and the mask,
each checked with an error message that names the argument (spec: Errors). `prepare_weighted` does the same
for logsumexp's weighted, signed and complex cases, with the same checks. Records are frozen:
what was checked is never changed afterwards.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from .._platform import (
    Array,
    Namespace,
    array_device,
    array_namespace,
    as_array,
    namespace_of,
    surely_false,
    values_are_known,
)

__all__ = [
    "Prepared",
    "WeightedCall",
    "astype_saturating",
    "broadcast_shape",
    "check_shape",
    "move_axis",
    "prepare",
    "prepare_weighted",
    "to_namespace",
]


@dataclass(frozen=True, slots=True)
class Prepared:
    """Checked arguments of one call.

    ``x`` is in the compute dtype (float32 for narrower floats); ``axes`` are non-negative and
    sorted; ``temperature`` is a Python float or an array in the compute dtype whose reduced
    axes have length 1; ``where`` is a boolean array or None. With ``axis_last`` the single
    reduced axis has been moved to the end of ``x``, ``where`` and ``temperature``.
    """

    xp: Namespace
    x: Array
    axes: tuple[int, ...]
    temperature: float | Array
    where: Array | None
    result_dtype: Any
    lazy: bool

    def finish(self, result: Array) -> Array:
        """Round the result once to the output dtype."""
        if result.dtype == self.result_dtype:
            return result
        return self.xp.astype(result, self.result_dtype)


def broadcast_shape(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> tuple[Any, ...] | None:
    """The broadcast of two shapes, or None when they do not broadcast."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        m = a[-i] if i <= len(a) else 1
        n = b[-i] if i <= len(b) else 1
        if m == 1 or m == n:
            out.append(n)
        elif n == 1:
            out.append(m)
        else:
            return None
    return tuple(reversed(out))


def check_shape(value: Array, shape: tuple[Any, ...], name: str, what: str) -> None:
    """Raise ValueError unless `value` broadcasts to `shape` without growing it."""
    if broadcast_shape(tuple(value.shape), shape) != tuple(shape) or value.ndim > len(shape):
        raise ValueError(
            f"{name} with shape {tuple(value.shape)} does not broadcast to {what} {tuple(shape)}"
        )


def astype_saturating(xp: Namespace, a: Array, dtype: Any) -> Array:
    """`a` cast to the real floating `dtype`, values beyond its range becoming +-inf.

    That is what the cast gives anyway, but NumPy-backed libraries warn on the way.
    """
    if xp.isdtype(a.dtype, "real floating") and xp.finfo(a.dtype).bits > xp.finfo(dtype).bits:
        largest = float(xp.finfo(dtype).max)
        a = xp.where(a > largest, xp.inf, xp.where(a < -largest, -xp.inf, a))
    return xp.astype(a, dtype)


def to_namespace(xp: Namespace, x: Array, value: object, name: str) -> Array:
    """`value` as an array of x's namespace and device; Python data is converted there."""
    if isinstance(value, (bool, int, float, list, tuple)):
        return xp.asarray(value, device=array_device(x))
    namespace_of(xp, value, name)
    return value


def move_axis(xp: Namespace, a: Array, source: int, destination: int) -> Array:
    """``moveaxis``, skipped where the axis is already in place (torch.func.vmap has no
    batching rule for moveaxis, and the common case, the last axis, needs none)."""
    if source % a.ndim == destination % a.ndim:
        return a
    return xp.moveaxis(a, source, destination)


def _normalise_axes(axis: object, ndim: int, single: bool) -> tuple[int, ...]:
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, on every call
        return (_plain(axis, ndim),)
    if single and not _is_int(axis):
        raise ValueError(f"axis must be a single int for this function, got {axis!r}")
    if axis is None:
        return tuple(range(ndim))
    items = (axis,) if _is_int(axis) else axis
    if not isinstance(items, tuple) or not all(_is_int(a) for a in items):
        raise ValueError(f"axis must be an int, a tuple of ints or None, got {axis!r}")
    axes = []
    for a in items:
        a = operator.index(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for x with {ndim} dimension(s)")
        axes.append(_plain(a, ndim))
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis {axis!r} repeats an axis")
    return tuple(sorted(axes))


def _plain(axis: int, ndim: int) -> int:
    """The in-range `axis` as a non-negative Python int constant.

    torch.compile passes an int argument whose value changed between calls as a symbolic int,
    which shapes and sorting cannot take; comparing it with each candidate makes the compiler
    specialise on its value (a guard), and what comes back is a constant.
    """
    axis %= ndim
    for a in range(ndim):  # (a loop, not next() over a generator: this runs on every call)
        if a == axis:
            return a
    raise AssertionError("unreachable: axis was checked to be in range")


def _is_int(value: object) -> bool:
    if isinstance(value, int):  # also torch.compile's symbolic ints, without a hasattr
        return not isinstance(value, bool)
    return hasattr(value, "__index__")


def _compute_dtypes(xp: Namespace, x: Array, name: str) -> tuple[Any, Any]:
    """(dtype to compute in, dtype of the result) for input x."""
    dtype = x.dtype
    if dtype == xp.float32 or dtype == xp.float64:  # the common case: isdtype costs more
        return dtype, dtype
    if xp.isdtype(dtype, "complex floating"):
        raise TypeError(f"{name} must be real, got complex dtype {dtype}")
    if xp.isdtype(dtype, "real floating"):
        # float16 and bfloat16 are computed in float32 and rounded once at the end.
        return (xp.float32 if xp.finfo(dtype).bits < 32 else dtype), dtype
    if xp.isdtype(dtype, ("bool", "integral")):
        default = _default_float(xp, x)
        return default, default
    raise TypeError(f"{name} must have a real numeric dtype, got {dtype}")


def _default_float(xp: Namespace, x: Array) -> Any:
    """The namespace's default real floating dtype on x's device (for bool and integer input)."""
    info = xp.__array_namespace_info__()
    return info.default_dtypes(device=array_device(x))["real floating"]


def _check_temperature(
    xp: Namespace,
    x: Array,
    dtype: Any,
    temperature: object,
    reduced_shape: tuple[Any, ...],
    lazy: bool,
) -> float | Array:
    """The temperature as a Python float or an array of `dtype` (x's compute dtype) on x's device."""
    if isinstance(temperature, bool):
        raise TypeError("temperature must be a real number or array, got a bool")
    if isinstance(temperature, (int, float)):
        # Comparisons, not math.isfinite: torch.compile may trace a Python float as a symbolic
        # float, which math.isfinite cannot take (a graph break). NaN fails both comparisons.
        if not (0 < temperature < math.inf):
            raise ValueError(f"temperature must be positive and finite, got {temperature!r}")
        if temperature > float(xp.finfo(dtype).max):
            raise ValueError(f"temperature {temperature!r} overflows x's compute dtype {dtype}")
        return float(temperature)
    t = to_namespace(xp, x, temperature, "temperature")
    if not xp.isdtype(t.dtype, ("integral", "real floating")):
        raise TypeError(f"temperature must have a real dtype, got {t.dtype}")
    check_shape(t, reduced_shape, "temperature", "the reduced shape (one value per slice)")
    # (Values past x's largest float become inf, and fail the check below.)
    t = astype_saturating(xp, t, dtype)
    # A traced or lazy temperature cannot be checked without running it.
    if not lazy and surely_false(xp.all((t > 0) & xp.isfinite(t))):
        raise ValueError(
            f"temperature must be positive and finite everywhere in x's compute dtype {dtype}"
        )
    return t


_FLOAT32_MAX = 3.4028234663852886e38


def prepare(
    x: Array,
    *,
    axis: object,
    temperature: object,
    where: object,
    single_axis: bool = False,
    move_axis_last: bool = False,
    full_where: bool = False,
    name: str = "x",
) -> Prepared:
    """Check and normalise the arguments shared by every public function.

    `single_axis` demands one int axis; `move_axis_last` also moves it to the end;
    `full_where` broadcasts the mask to x's shape (for callers that gather from it).
    """
    x = as_array(x, name)
    xp = array_namespace(x)
    compute_dtype, result_dtype = _compute_dtypes(xp, x, name)
    axes = _normalise_axes(axis, x.ndim, single_axis or move_axis_last)
    lazy = not values_are_known(x)
    if x.dtype != compute_dtype:
        x = xp.astype(x, compute_dtype)
    shape = tuple(x.shape)

    mask = None if where is None else _mask(xp, x, where, shape, "x's shape")
    if mask is not None and full_where:
        mask = xp.broadcast_to(mask, shape)
    # The common case, on every call; a temperature up to float32's largest fits every
    # compute dtype (larger ones are checked against x's in `_check_temperature`).
    if type(temperature) is float and 0 < temperature <= _FLOAT32_MAX:
        t: float | Array = temperature
    else:
        reduced_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
        t = _check_temperature(xp, x, x.dtype, temperature, reduced_shape, lazy)

    if move_axis_last:
        reduced_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
        # The Jacobian family works along the last axis: move it there once.
        (a,) = axes
        x = move_axis(xp, x, a, -1)
        if mask is not None:
            mask = move_axis(xp, xp.broadcast_to(mask, shape), a, -1)
        if not isinstance(t, float):
            t = move_axis(xp, xp.broadcast_to(t, reduced_shape), a, -1)
        axes = (x.ndim - 1,)
    return Prepared(xp, x, axes, t, mask, result_dtype, lazy)


def _mask(xp: Namespace, x: Array, where: object, shape: tuple[Any, ...], what: str) -> Array:
    """`where` checked: a boolean array of x's namespace that broadcasts to `shape`."""
    mask = to_namespace(xp, x, where, "where")
    if mask.dtype != xp.bool:
        raise TypeError(f"where must be a boolean array, got dtype {mask.dtype}")
    check_shape(mask, shape, "where", what)
    return mask


@dataclass(frozen=True, slots=True)
class WeightedCall:
    """Checked arguments of a weighted, signed or complex logsumexp: x and b broadcast
    together, in the compute dtype."""

    xp: Namespace
    x: Array
    b: Array | None  # None: every weight is 1
    included: Array | None  # entries that take part (where, and a nonzero weight)
    axes: tuple[int, ...]
    temperature: float | Array
    result_dtype: Any
    real_dtype: Any  # the compute dtype, or its real counterpart for complex x


def prepare_weighted(x: Any, axis: Any, temperature: Any, where: Any, b: Any) -> WeightedCall:
    """`prepare` for logsumexp with weights `b`, a sign, or complex x."""
    x = as_array(x, "x")
    xp = array_namespace(x)
    if b is not None:
        b = to_namespace(xp, x, b, "b")
        if not xp.isdtype(b.dtype, ("bool", "integral", "real floating", "complex floating")):
            raise TypeError(f"b must have a numeric dtype, got {b.dtype}")
    result_dtype = _weighted_result_dtype(xp, x, b)
    is_complex = xp.isdtype(result_dtype, "complex floating")
    compute_dtype = result_dtype
    if not is_complex and xp.finfo(result_dtype).bits < 32:
        compute_dtype = xp.float32  # float16 and bfloat16 are computed in float32
    shape = tuple(x.shape)
    if b is not None:
        both = broadcast_shape(shape, tuple(b.shape))
        if both is None:
            raise ValueError(f"b with shape {tuple(b.shape)} does not broadcast to x's {shape}")
        shape = both
        b = xp.broadcast_to(xp.astype(b, compute_dtype), shape)
    lazy = not values_are_known(x)
    x = xp.broadcast_to(xp.astype(x, compute_dtype), shape)
    axes = _normalise_axes(axis, len(shape), False)
    real_dtype = compute_dtype
    if is_complex:
        real_dtype = xp.float32 if compute_dtype == xp.complex64 else xp.float64
    included = None if b is None else b != 0
    if where is not None:
        mask = _mask(xp, x, where, shape, "the shape of x (broadcast with b)")
        included = mask if included is None else included & mask
    reduced = tuple(1 if i in axes else n for i, n in enumerate(shape))
    t = _check_temperature(xp, x, real_dtype, temperature, reduced, lazy)
    return WeightedCall(xp, x, b, included, axes, t, result_dtype, real_dtype)


def _weighted_result_dtype(xp: Namespace, x: Array, b: Array | None) -> Any:
    """The dtype the library promotes x and b to (SciPy's rule), integers becoming floats."""
    dtype = x.dtype
    if b is not None:
        try:
            dtype = xp.result_type(x.dtype, b.dtype)
        except TypeError:
            # array-api-strict promotes no integer with a float: make the integers floats first.
            dtype = xp.result_type(_floating(xp, x.dtype, x), _floating(xp, b.dtype, x))
    dtype = _floating(xp, dtype, x)
    if not xp.isdtype(dtype, ("real floating", "complex floating")):
        raise TypeError(f"x must have a numeric dtype, got {x.dtype}")
    return dtype


def _floating(xp: Namespace, dtype: Any, x: Array) -> Any:
    """`dtype`, or the default real floating dtype for bool and integer dtypes."""
    return _default_float(xp, x) if xp.isdtype(dtype, ("bool", "integral")) else dtype
