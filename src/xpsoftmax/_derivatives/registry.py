"""Every derivative rule, by name: the one list the attachment reads."""

from __future__ import annotations

from .cross_entropy import CROSS_ENTROPY
from .linear_cross_entropy import LINEAR_CROSS_ENTROPY
from .reduced_linear_cross_entropy import REDUCED_LINEAR_CROSS_ENTROPY
from .rule import Rule
from .softmax import LOG_SOFTMAX, LOGSUMEXP, SOFTMAX

__all__ = ["RULES"]

RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        SOFTMAX,
        LOG_SOFTMAX,
        LOGSUMEXP,
        CROSS_ENTROPY,
        LINEAR_CROSS_ENTROPY,
        REDUCED_LINEAR_CROSS_ENTROPY,
    )
}
