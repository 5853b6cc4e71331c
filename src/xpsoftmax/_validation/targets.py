"""The checks of a loss's target and its options, shared by cross_entropy and
linear_cross_entropy: reduction, label smoothing, class weights, class indices (with
ignore_index) and probability targets. Each error names its argument."""

from __future__ import annotations

import operator
from typing import Any

from .._platform import Array, Namespace, surely_false, values_are_known
from . import to_namespace

__all__ = [
    "check_label_smoothing",
    "check_reduction",
    "class_indices",
    "class_weights",
    "int_argument",
    "probabilities",
]

REDUCTIONS = ("none", "sum", "mean")


def check_reduction(reduction: object) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_label_smoothing(label_smoothing: object) -> float:
    """label_smoothing as a float in [0, 1]."""
    if isinstance(label_smoothing, bool) or not (0.0 <= label_smoothing <= 1.0):  # type: ignore[operator]
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)  # type: ignore[arg-type]


def class_weights(
    xp: Namespace, like: Array, weight: object, n_classes: int, dtype: Any, lazy: bool
) -> Array | None:
    """`weight` checked, one finite value per class, in `dtype` (None stays None)."""
    if weight is None:
        return None
    w = to_namespace(xp, like, weight, "weight")
    if not xp.isdtype(w.dtype, ("real floating", "integral")):
        raise TypeError(f"weight must hold real numbers, got dtype {w.dtype}")
    if tuple(w.shape) != (n_classes,):
        raise ValueError(
            f"weight must hold one value per class, shape ({n_classes},); got {tuple(w.shape)}"
        )
    w = xp.astype(w, dtype)
    if not lazy and surely_false(xp.all(xp.isfinite(w))):
        raise ValueError("weight must be finite")
    return w


def class_indices(
    xp: Namespace,
    target: Array,
    batch: tuple[int, ...],
    n_classes: int,
    ignore_index: object,
    shape_rule: str,
) -> tuple[Array, Array | None]:
    """(target with ignored samples pointing at class 0, the ignored samples or None).

    `batch` is the shape the indices must have, described by `shape_rule` in the error.
    """
    if tuple(target.shape) != batch:
        raise ValueError(
            f"target holds class indices, so its shape must be {shape_rule}, {batch}; "
            f"got {tuple(target.shape)}"
        )
    ignored = None
    if ignore_index is not None:
        ignored = target == int_argument(ignore_index, "ignore_index")
        # Any real class serves for the gather; the ignored samples' losses are dropped.
        target = xp.where(ignored, xp.zeros_like(target), target)
    if _surely_outside(xp, target, n_classes):
        hint = "; ignore_index is None by default, not -100 as in PyTorch"
        negative = int(xp.min(target)) < 0  # (its values are known: it was just read)
        raise ValueError(
            f"target holds class indices outside [0, {n_classes})" + (hint if negative else "")
        )
    return target, ignored


def _surely_outside(xp: Namespace, target: Array, n_classes: int) -> bool:
    """Whether some class index is known now to lie outside [0, n_classes).

    Two reductions and two reads (the least and the greatest index): comparing every index
    against both bounds costs more. Lazy or traced indices cannot be read and pass.
    """
    if 0 in tuple(target.shape):
        return False
    lowest, highest = xp.min(target), xp.max(target)
    # (Asked of the results: concrete indices closed over by a traced function give tracers.)
    if not values_are_known(lowest):
        return False
    try:
        return int(lowest) < 0 or int(highest) >= n_classes
    except RuntimeError:  # a transform that refuses the read (torch.func.vmap)
        return False


def int_argument(value: object, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return operator.index(value)


def probabilities(
    xp: Namespace,
    target: Array,
    shape: tuple[int, ...],
    dtype: Any,
    ignore_index: object,
    shape_rule: str,
) -> Array:
    """A probability target checked: real, of `shape` (described by `shape_rule`), in `dtype`."""
    if not xp.isdtype(target.dtype, "real floating"):
        raise TypeError(
            f"target must hold integer class indices or real probabilities, got {target.dtype}"
        )
    if tuple(target.shape) != shape:
        raise ValueError(
            f"target holds probabilities, so its shape must be {shape_rule} {shape}; "
            f"got {tuple(target.shape)}"
        )
    # PyTorch accepts its default -100 here and ignores it; any class it could name is an error.
    if ignore_index is not None and int_argument(ignore_index, "ignore_index") >= 0:
        raise ValueError(
            f"ignore_index applies to class-index targets only, got {ignore_index!r} with a "
            "probability target"
        )
    return xp.astype(target, dtype)
