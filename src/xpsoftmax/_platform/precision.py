"""Matrix products in a narrow float dtype: taken in that dtype where the library and device run
them natively, staged through float32 where they are emulated.

A processor with bfloat16 matrix units (recent x86 and ARM servers, every recent GPU) runs a
bfloat16 product several times faster than a float32 one; elsewhere a library emulates it,
converting to float32 and back, and it runs many times slower. Which holds is a property of the
library's build and the device, which no attribute tells: a one-off probe times a small
product in both dtypes, once per library, device and dtype.
"""

from __future__ import annotations

import time
from typing import Any

from .namespaces import Array, Namespace, array_device, array_namespace
from .tracing import values_are_known

__all__ = ["narrow_products"]

# The probe's product: n x n by n x n, a few milliseconds in float32 on one core.
_PROBE_SIZE = 384
_PROBE_ROUNDS = 3


def narrow_products(x: Array, dtype: Any) -> bool:
    """Whether matrix products of `dtype` operands (narrower than float32) are best taken in
    `dtype` on x's library and device, their results widened afterwards: `dtype` keeps
    float32's exponent range (bfloat16 does; float16, whose largest value is 65,504, would turn
    large finite logits into infinities), and its product is no slower than float32's.

    Eager arrays probe once per library, device and dtype; a traced or compiled call reads
    what an eager call found, and stages through float32 where none has looked yet. A library
    that refuses the dtype answers False.
    """
    xp = array_namespace(x)
    try:
        if xp.finfo(dtype).max < 0.5 * xp.finfo(xp.float32).max:
            return False
    except (TypeError, ValueError):
        return False
    device = array_device(x)
    key = (xp, str(device), str(dtype))
    known = _NATIVE.get(key)
    if known is not None or not values_are_known(x):
        return bool(known)
    try:
        narrow = _best_time(xp, dtype, device)
        wide = _best_time(xp, xp.float32, device)
    except (TypeError, ValueError, RuntimeError):
        narrow, wide = 1.0, 0.0
    _NATIVE[key] = narrow <= wide
    return _NATIVE[key]


def _best_time(xp: Namespace, dtype: Any, device: Any) -> float:
    """The best of a few timed products of `dtype` on `device` (after one untimed), each
    waited for by reading one of its values."""
    a = xp.ones((_PROBE_SIZE, _PROBE_SIZE), dtype=dtype, device=device)
    best = float("inf")
    for i in range(_PROBE_ROUNDS + 1):
        start = time.perf_counter()
        float(xp.matmul(a, a)[0, 0])
        if i:
            best = min(best, time.perf_counter() - start)
    return best


# Written by eager calls only (a compiler that guards on what it reads would compile again
# once it grows); at most one entry per library, device and narrow dtype.
_NATIVE: dict[tuple[Any, str, str], bool] = {}
