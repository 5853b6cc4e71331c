"""Reference formulas shared by adapters whose framework lacks a function of its own.

Written with a NumPy-like module (`numpy` or `jax.numpy`) passed in, so that the same definition serves
the SciPy host path and JAX, and imports no framework itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from types import ModuleType

REDUCTIONS = ("none", "sum", "mean")


class LossOptions(NamedTuple):
    """The options of `Backend.ref_cross_entropy`, as each backend's computation receives them."""

    axis: int = -1
    label_smoothing: float = 0.0
    reduction: str = "mean"


def cross_entropy_from_log_probs(
    nx: ModuleType, log_probs: Any, target: Any, options: LossOptions
) -> Any:
    """Cross-entropy (spec: Cross-entropy) from log-probabilities, with a NumPy-like module `nx`.

    `nx` is `numpy` or `jax.numpy`; both have the `moveaxis` and `take_along_axis` used here. The
    per-sample loss is ``-sum_i q_i log_probs_i`` with q the one-hot or given probabilities, smoothed as
    ``(1 - eps) q + eps / K``; for index targets the smoothing term is ``-eps * mean_i log_probs_i``,
    which avoids building the one-hot array.
    """
    axis, label_smoothing, reduction = options
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    log_probs = nx.moveaxis(log_probs, axis, -1)
    n_classes = log_probs.shape[-1]
    if nx.issubdtype(target.dtype, nx.integer):
        if target.shape != log_probs.shape[:-1]:
            raise ValueError(f"index target shape {target.shape} != {log_probs.shape[:-1]}")
        if target.size and _surely(nx.any((target < 0) | (target >= n_classes))):
            raise ValueError(f"class index out of range [0, {n_classes})")
        loss = -nx.take_along_axis(log_probs, target[..., None], axis=-1)[..., 0]
        if label_smoothing:  # skipped at 0 so that -inf log-probabilities do not give 0 * inf
            loss = (1 - label_smoothing) * loss - label_smoothing * nx.mean(log_probs, axis=-1)
    else:
        probs = nx.moveaxis(target, axis, -1)
        if label_smoothing:
            probs = (1 - label_smoothing) * probs + label_smoothing / n_classes
        loss = -nx.sum(probs * log_probs, axis=-1)
    if reduction == "sum":
        return nx.asarray(nx.sum(loss))
    if reduction == "mean":
        # The mean of no samples is NaN, as in PyTorch, without NumPy's empty-slice warning.
        return nx.asarray(nx.mean(loss) if loss.size else nx.full((), nx.nan, dtype=loss.dtype))
    return loss


def _surely(condition: Any) -> bool:
    """The value of a 0-d boolean, or False where it is traced (under `jax.jit`) and unknown."""
    try:
        return bool(condition)
    except TypeError:  # JAX's ConcretizationTypeError is a TypeError
        return False
