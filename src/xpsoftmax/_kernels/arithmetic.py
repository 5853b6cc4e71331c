"""Elementwise arithmetic that keeps its digits and its silence: division by a temperature
with its overflow limit, power-of-two scaling near the float limit, and the operations that
reuse a temporary of ours in place where the library allows it."""

from __future__ import annotations

from typing import Any

from .._platform import (
    Array,
    Namespace,
    accumulating_product,
    all_below_now,
    array_device,
    can_update_in_place,
    may_warn_on_overflow,
    records_gradients,
    surely_true,
    values_are_known,
    whole_product,
    writes_into_out,
)

__all__ = [
    "add",
    "add_product",
    "compute_dtype",
    "divide",
    "exponentiate",
    "halvings",
    "multiply",
    "overflow_free",
    "product",
    "scale",
    "slice_maximum",
    "subtract",
    "sum_safe_bound",
    "widened",
]


def scale(
    xp: Namespace, value: Array, temperature: float | Array, nonpositive: bool = False
) -> Array:
    """``value / T``, with the T -> 0 limit, +-inf, where the quotient overflows.

    A tiny T sends ``value / T`` past the largest float: +-inf is right, but NumPy-backed
    libraries warn on the way, so such entries are set to +-inf first (by a bound a few ulps
    inside the overflow threshold: for shifted logits, entries whose exponentials are 0
    anyway). A Python T below the dtype's smallest normal number may round to 0 there
    (0 / 0 is NaN): every nonzero entry is then +-inf and 0 stays 0, the limit itself.
    Pass only our own temporaries: `value` may be divided in place. `nonpositive` says that
    no entry is above 0 (shifted logits), which makes the eager check for overflow one pass.
    """
    info = xp.finfo(value.dtype)
    if isinstance(temperature, float):
        if temperature >= 1.0:
            return divide(xp, value, temperature)
        if temperature < float(info.smallest_normal):
            limit = xp.where(value > 0.0, xp.full_like(value, xp.inf), -xp.inf)
            return xp.where((value == 0.0) | xp.isnan(value), value, limit)
        below_one: float | Array = temperature
    else:
        below_one = xp.where(temperature < 1.0, temperature, 1.0)
    if may_warn_on_overflow(value):
        # (T >= 1 cannot overflow; its bound, max, leaves every finite entry alone.)
        bound = float(info.max) * (1.0 - 4.0 * float(info.eps)) * below_one
        if _surely_within(xp, value, bound, nonpositive):
            return divide(xp, value, temperature)
        limit = xp.where(value > 0.0, xp.full_like(value, xp.inf), -xp.inf)
        value = xp.where(xp.abs(value) > bound, limit, value)
    return divide(xp, value, temperature)


def _surely_within(xp: Namespace, value: Array, bound: Any, nonpositive: bool) -> bool:
    """Whether every |value| is known now to be at most a Python `bound` (eager arrays only):
    one reduction, where setting the overflowing entries would cost two full passes."""
    if not isinstance(bound, float) or not values_are_known(value):
        return False
    if 0 in tuple(value.shape):
        return True
    if nonpositive:
        return surely_true(xp.min(value) >= -bound)
    return all_below_now(xp, value, bound)


def overflow_free(xp: Namespace, dtype: object) -> float:
    """A bound on a slice's maximum m below which ``x - m`` cannot overflow for any x of `dtype`.

    ``x - m`` overflows only when m - x exceeds the largest float by half its spacing; with
    x >= -max that needs m above ``max * eps / 4``, the spacing of the largest floats.
    """
    # (Asked on every eager call, of a handful of dtypes: kept per namespace and dtype, since
    # dtypes of two libraries may hash alike and warn when compared. Lazy calls, traced by a
    # compiler that guards on what it reads, never ask.)
    key = (xp, dtype)
    bound = _OVERFLOW_FREE.get(key)
    if bound is None:
        info = xp.finfo(dtype)
        bound = _OVERFLOW_FREE[key] = float(info.max) * float(info.eps) / 4.0
    return bound


_OVERFLOW_FREE: dict[tuple[Namespace, Any], float] = {}


def slice_maximum(xp: Namespace, x: Array, axes: tuple[int, ...]) -> Array:
    """Per-slice maximum; -inf for slices of length 0, where a max reduction has no identity."""
    if 0 in x.shape and any(x.shape[a] == 0 for a in axes):
        shape = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        return xp.full(shape, -xp.inf, dtype=x.dtype, device=array_device(x))
    return xp.max(x, axis=axes, keepdims=True)


def sum_safe_bound(xp: Namespace, dtype: Any, n: int) -> float:
    """A magnitude below which n values of `dtype`, their sum, and its differences with any of
    them cannot overflow."""
    return float(xp.finfo(dtype).max) / (4.0 * (n + 1))


def halvings(xp: Namespace, magnitude: Array, bound: float) -> Array:
    """Per slice, the fewest k >= 0 with ``magnitude * 2**-k <= bound``.

    Values near the float limit are scaled by ``2**-k`` before they are summed (exact: a power
    of two), and the k put back afterwards, as a factor or as ``k log 2``.
    """
    over = xp.where(magnitude > bound, magnitude / bound, xp.ones_like(magnitude))
    return xp.ceil(xp.log2(over))


def exponentiate(xp: Namespace, a: Array) -> Array:
    """exp(a), into a's memory where exp takes ``out=``: pass only our own temporaries."""
    if can_update_in_place(a) and writes_into_out(xp, xp.exp):
        return xp.exp(a, out=a)
    return xp.exp(a)


def divide(xp: Namespace, numerator: Array, denominator: Array | float) -> Array:
    """numerator / denominator, reusing numerator's memory: pass only our own temporaries."""
    if can_update_in_place(numerator, denominator):
        numerator /= denominator
        return numerator
    return numerator / denominator


def multiply(xp: Namespace, a: Array, factor: Array | float) -> Array:
    """a * factor, reusing a's memory: pass only our own temporaries."""
    if can_update_in_place(a, factor):
        a *= factor
        return a
    return a * factor


def add(xp: Namespace, augend: Array, addend: Array | float) -> Array:
    """augend + addend, reusing augend's memory: pass only our own temporaries."""
    if can_update_in_place(augend, addend):
        augend += addend
        return augend
    return augend + addend


def subtract(xp: Namespace, minuend: Array, subtrahend: Array | float) -> Array:
    """minuend - subtrahend, reusing minuend's memory: pass only our own temporaries."""
    if can_update_in_place(minuend, subtrahend):
        minuend -= subtrahend
        return minuend
    return minuend - subtrahend


def compute_dtype(xp: Namespace, dtype: Any) -> Any:
    """The dtype a kernel computes in for arrays of `dtype`: float32 for float16 and
    bfloat16, `dtype` itself for the others."""
    if dtype == xp.float32 or dtype == xp.float64:  # (the common case: finfo costs more)
        return dtype
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def widened(xp: Namespace, a: Array) -> Array:
    """a in its compute dtype (`compute_dtype`)."""
    dtype = compute_dtype(xp, a.dtype)
    return a if a.dtype == dtype else xp.astype(a, dtype)


def product(xp: Namespace, a: Array, b: Array, widen: bool = True) -> Array:
    """``a @ b`` in the compute dtype (in the operands' narrow dtype without `widen`).
    Operands of two dtypes (a float32 cotangent beside bfloat16 weights, whose products the
    library runs natively: see `xpsoftmax._validation.linear`) meet in the narrower."""
    if a.dtype != b.dtype:
        if xp.finfo(a.dtype).bits < xp.finfo(b.dtype).bits:
            b = xp.astype(b, a.dtype)
        else:
            a = xp.astype(a, b.dtype)
    result = whole_product(xp, a, b)
    return widened(xp, result) if widen else result


def add_product(xp: Namespace, total: Array, a: Array, b: Array) -> Array:
    """``total + a.T @ b`` for total (V, D), a (rows, V) and b (rows, D), in total's dtype.

    Where total may be updated in place: through the array's accumulating product where it
    has one and the three share a dtype, else a slice of V at a time, each slice's product no
    larger than `a`: no (V, D) temporary, the weights' size, beside total. Elsewhere (lazy or
    immutable arrays, a product that autodiff records) one product, one sum.
    """
    if records_gradients(a, b) or not can_update_in_place(total):
        return total + product(xp, xp.matrix_transpose(a), b)
    accumulate = accumulating_product(total)
    if accumulate is not None and a.dtype == b.dtype == total.dtype:
        accumulate(xp.matrix_transpose(a), b)
        return total
    n_classes, dim = total.shape
    slice_rows = max(1, (a.shape[0] * n_classes) // max(dim, 1))
    for start in range(0, n_classes, slice_rows):
        stop = min(start + slice_rows, n_classes)
        # (An in-place sum takes a narrow product as it is, into total's dtype.)
        total[start:stop, ...] += product(xp, xp.matrix_transpose(a[:, start:stop]), b, False)
    return total
