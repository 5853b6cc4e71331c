"""softmax_entropy with one bug each: what tests/test_bugs.py and the docs page show caught."""

import array_api_compat


def entropy_in_place(logits, axis=-1):
    xp = array_api_compat.array_namespace(logits)
    logits -= xp.max(logits, axis=axis, keepdims=True)  # bug: shifts the caller's array
    exps = xp.exp(logits)
    total = xp.sum(exps, axis=axis)
    return xp.log(total) - xp.sum(exps * logits, axis=axis) / total


def entropy_python_float(logits, axis=-1):
    xp = array_api_compat.array_namespace(logits)
    shifted = logits - float(xp.max(logits))  # bug: float() needs the value now
    exps = xp.exp(shifted)
    total = xp.sum(exps, axis=axis)
    return xp.log(total) - xp.sum(exps * shifted, axis=axis) / total


def entropy_float64(logits, axis=-1):
    xp = array_api_compat.array_namespace(logits)
    shifted = logits - xp.max(logits, axis=axis, keepdims=True)
    exps = xp.exp(shifted)
    total = xp.sum(exps, axis=axis)
    entropy = xp.log(total) - xp.sum(exps * shifted, axis=axis) / total
    zero = xp.asarray(0.0, dtype=xp.float64)  # bug: a float64 constant promotes the result
    return xp.maximum(entropy, zero)


def entropy_log_zero(logits, axis=-1):
    xp = array_api_compat.array_namespace(logits)
    shifted = logits - xp.max(logits, axis=axis, keepdims=True)
    p = xp.exp(shifted) / xp.sum(xp.exp(shifted), axis=axis, keepdims=True)
    # bug: where() picks 0 for p == 0, but log(0) has already been computed, and warned
    return -xp.sum(xp.where(p > 0, p * xp.log(p), 0.0), axis=axis)
