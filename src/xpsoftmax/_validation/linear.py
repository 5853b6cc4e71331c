"""The checks of linear_cross_entropy's arguments, into a frozen record (`PreparedHead`).

Shapes: hidden (..., D), linear_weight (V, D), linear_bias (V,), target (...) class indices
or (..., V) probabilities. The arrays come out flattened over the tokens, (N, D), (N,) or
(N, V), in hidden's compute dtype (float32 for float16 and bfloat16), but for hidden and the
layer where their products run natively in their own narrow dtype (bfloat16 on a processor
with bfloat16 matrix units): they keep it, and the kernels widen each product."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._platform import (
    Array,
    Namespace,
    array_namespace,
    as_array,
    narrow_products,
    values_are_known,
)
from . import _check_temperature, _compute_dtypes, to_namespace
from .targets import (
    check_label_smoothing,
    check_reduction,
    class_indices,
    class_weights,
    probabilities,
)

__all__ = ["PreparedHead", "prepare_head"]


@dataclass(frozen=True, slots=True)
class PreparedHead:
    """Checked arguments of one linear_cross_entropy call."""

    xp: Namespace
    hidden: Array  # (N, D), in the products' dtype (see `_product_dtype`)
    linear_weight: Array  # (V, D), likewise
    linear_bias: Array | None  # (V,), likewise
    target: Array  # (N,) class indices (ignored ones pointing at 0) or (N, V) probabilities
    weight: Array | None  # (V,) class weights
    ignored: Array | None  # (N,) booleans
    batch: tuple[int, ...]  # hidden's shape without D
    class_indices: bool
    temperature: float
    softcap: float | None
    z_loss: float
    label_smoothing: float
    chunk_size: int | None
    dtypes: tuple[Any, Any, Any]  # of the result (and hidden), linear_weight and linear_bias
    filter_eps: float | None  # gradient filtering's bound (spec: Linear cross-entropy)

    def finish(self, result: Array, dtype: Any = None) -> Array:
        """Round the result once to the output dtype (hidden's, unless `dtype` is given)."""
        dtype = self.dtypes[0] if dtype is None else dtype
        return result if result.dtype == dtype else self.xp.astype(result, dtype)


def prepare_head(
    hidden: object,
    linear_weight: object,
    target: object,
    *,
    linear_bias: object,
    temperature: object,
    softcap: object,
    z_loss: object,
    label_smoothing: object,
    reduction: object,
    weight: object,
    ignore_index: object,
    chunk_size: object,
    filter_eps: object = None,
) -> PreparedHead:
    h = as_array(hidden, "hidden")
    xp = array_namespace(h)
    dtype, result_dtype = _compute_dtypes(xp, h, "hidden")
    if h.ndim < 1:
        raise ValueError("hidden must have at least one axis, (..., D)")
    lazy = not values_are_known(h)
    batch, dim = tuple(h.shape[:-1]), h.shape[-1]
    w = _layer_array(xp, h, linear_weight, "linear_weight")
    if w.ndim != 2 or w.shape[1] != dim:
        raise ValueError(
            f"linear_weight must have shape (V, D) with hidden's D = {dim}; got {tuple(w.shape)}"
        )
    n_classes = w.shape[0]
    bias = None
    if linear_bias is not None:
        bias = _layer_array(xp, h, linear_bias, "linear_bias")
        if tuple(bias.shape) != (n_classes,):
            raise ValueError(
                f"linear_bias must have shape (V,) = ({n_classes},); got {tuple(bias.shape)}"
            )
    check_reduction(reduction)
    eps = check_label_smoothing(label_smoothing)
    n_tokens = math.prod(batch)
    t = to_namespace(xp, h, target, "target")
    ignored = None
    indices = xp.isdtype(t.dtype, "integral")
    if indices:
        rule = "hidden's shape without its last axis"
        t, ignored = class_indices(xp, t, batch, n_classes, ignore_index, rule)
        t = xp.reshape(t, (n_tokens,))
        ignored = None if ignored is None else xp.reshape(ignored, (n_tokens,))
    else:
        rule = "hidden's shape with V in place of D,"
        t = probabilities(xp, t, (*batch, n_classes), dtype, ignore_index, rule)
        t = xp.reshape(t, (n_tokens, n_classes))
    products = _product_dtype(xp, h, w, bias, dtype)
    return PreparedHead(
        xp,
        xp.reshape(h if h.dtype == products else xp.astype(h, products), (n_tokens, dim)),
        xp.astype(w, products) if w.dtype != products else w,
        None if bias is None else (bias if bias.dtype == products else xp.astype(bias, products)),
        t,
        class_weights(xp, h, weight, n_classes, dtype, lazy),
        ignored,
        batch,
        indices,
        _check_temperature(xp, h, dtype, _number(temperature, "temperature"), (), lazy),
        None if softcap is None else _positive(softcap, "softcap"),
        _non_negative(z_loss, "z_loss"),
        eps,
        None if chunk_size is None else _chunk_size(chunk_size),
        (result_dtype, w.dtype, None if bias is None else bias.dtype),
        _filter_eps(xp, filter_eps, result_dtype),
    )


def _product_dtype(xp: Namespace, h: Array, w: Array, bias: Array | None, dtype: Any) -> Any:
    """The dtype of hidden and the layer in the matrix products: their own where all three
    share a narrow dtype whose products the library and device run natively (the kernels
    widen each product's result to `dtype`, the compute dtype); `dtype` elsewhere (staged
    through float32 products where the narrow ones are emulated)."""
    if h.dtype == dtype or w.dtype != h.dtype or (bias is not None and bias.dtype != h.dtype):
        return dtype
    return h.dtype if narrow_products(h, h.dtype) else dtype


def _layer_array(xp: Namespace, h: Array, value: object, name: str) -> Array:
    a = to_namespace(xp, h, value, name)
    if not xp.isdtype(a.dtype, ("real floating", "integral")):
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    return a


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real Python number, got {value!r}")
    return float(value)


def _positive(value: object, name: str) -> float:
    number = _number(value, name)
    if not (0.0 < number < math.inf):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number


def _non_negative(value: object, name: str) -> float:
    number = _number(value, name)
    if not (0.0 <= number < math.inf):
        raise ValueError(f"{name} must be non-negative and finite, got {value!r}")
    return number


def _filter_eps(xp: Namespace, value: object, dtype: Any) -> float | None:
    """filter_eps checked: None, a non-negative finite number, or "auto", Cut
    Cross-Entropy's choice: the resolution of hidden's dtype over 32 (eps / 32)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"filter_eps must be None, a number or 'auto', got {value!r}")
        return float(xp.finfo(dtype).eps) / 32.0
    return _non_negative(value, "filter_eps")


def _chunk_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"chunk_size must be an int or None, got {value!r}")
    if value < 1:
        raise ValueError(f"chunk_size must be at least 1, got {value!r}")
    return value
