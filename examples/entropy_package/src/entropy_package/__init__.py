"""The entropy of a softmax, written once against the array API."""

from __future__ import annotations

from typing import Any

import array_api_compat

__all__ = ["softmax_entropy"]


def softmax_entropy(logits: Any, /, *, axis: int = -1) -> Any:
    """Entropy, in nats, of ``softmax(logits)`` along `axis`, for any array-API library.

    ``H = logsumexp(x) - sum(softmax(x) * x)``, with x shifted by its maximum so that nothing
    overflows, and without a logarithm of a probability that may underflow to zero.
    """
    xp = array_api_compat.array_namespace(logits)
    shifted = logits - xp.max(logits, axis=axis, keepdims=True)
    exps = xp.exp(shifted)
    total = xp.sum(exps, axis=axis, keepdims=True)
    expected_shift = xp.sum(exps * shifted, axis=axis) / xp.squeeze(total, axis=axis)
    return xp.log(xp.squeeze(total, axis=axis)) - expected_shift
