"""logsumexp with weights, a sign, or complex input: the cases of ``scipy.special.logsumexp``.

``T * log(sum_j b_j exp(x_j / T))`` follows SciPy's conventions (spec: Weights, signs and
complex input): a zero weight removes its entry (even an infinite one), a negative sum is NaN
unless the sign is asked for, and complex input gives the principal complex logarithm. The plain real logsumexp is `normalise.log_sum_exp`;
this module is reached only when one of these features is used.

The accuracy ideas are those of `normalise`: shift by the largest (real part of a) logit and
split the sum into the weight at the maximum, ``top``, and the rest, ``tail``; while
``|tail| <= |top| / 2`` the logarithm is ``log|top| + log1p(tail / top)``, which keeps the
digits ``log(top + tail)`` loses when one entry dominates. Everything else is computed in
real arithmetic on real and imaginary parts, which the standard defines for every library
and where each special value can be handled without a warning.
"""

from __future__ import annotations

import math
from typing import Any

from .._platform import Array, Namespace, array_device, as_array, may_warn_on_overflow
from .._validation import WeightedCall, prepare_weighted
from .arithmetic import halvings, scale, slice_maximum, sum_safe_bound

__all__ = ["needs_weighted_logsumexp", "weighted_logsumexp"]


def needs_weighted_logsumexp(x: object, b: object, return_sign: bool) -> bool:
    """Whether a logsumexp call needs this module: weights, a sign, or complex input."""
    if b is not None or return_sign:
        return True
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        # Python data: a complex number anywhere in it makes a complex NumPy array.
        dtype = as_array(x, "x").dtype
    # The dtype's name, not isdtype: this runs on every logsumexp call, and every library
    # names its complex dtypes so (NumPy, PyTorch, JAX, CuPy, Dask, array-api-strict).
    return "complex" in str(dtype)


def weighted_logsumexp(
    x: Array,
    *,
    axis: Any,
    keepdims: bool,
    temperature: Any,
    where: Any,
    b: Any,
    return_sign: bool,
) -> Array | tuple[Array, Array]:
    """`logsumexp` with weights `b`, `return_sign` or complex x (see `logsumexp`)."""
    c = prepare_weighted(x, axis, temperature, where, b)
    xp = c.xp
    if xp.isdtype(c.x.dtype, "complex floating"):
        log_magnitude, phase, offset = _complex_parts(c)
        out = offset + _times(xp, c.temperature, log_magnitude)
        if return_sign:
            sign = _from_parts(xp, xp.cos(phase), xp.sin(phase), c.x.dtype)
            sign = xp.where(log_magnitude == -xp.inf, xp.zeros_like(sign), sign)
            return _finish(c, out, keepdims), _finish(c, sign, keepdims)
        imaginary = _times(xp, c.temperature, phase)
        return _finish(c, _from_parts(xp, out, imaginary, c.x.dtype), keepdims)
    log_magnitude, sign, offset = _real_parts(c)
    out = offset + _times(xp, c.temperature, log_magnitude)
    if return_sign:
        return _finish(c, out, keepdims), _finish(c, sign, keepdims)
    # The logarithm of a negative sum has no real value.
    return _finish(c, xp.where(sign < 0.0, xp.nan, out), keepdims)


def _times(xp: Namespace, temperature: float | Array, value: Array) -> Array:
    """T * value, with infinite values kept (a T below the dtype's range rounds to 0 there)."""
    if isinstance(temperature, float) and temperature == 1.0:
        return value
    finite = xp.isfinite(value)
    return xp.where(finite, temperature * xp.where(finite, value, 0.0), value)


def _finish(c: WeightedCall, result: Array, keepdims: bool) -> Array:
    xp = c.xp
    if not keepdims and c.axes:
        result = xp.squeeze(result, axis=c.axes)
    wanted = c.result_dtype
    if xp.isdtype(result.dtype, "real floating") and xp.isdtype(wanted, "complex floating"):
        wanted = c.real_dtype  # return_sign's log-magnitude of complex input is real
    return result if result.dtype == wanted else xp.astype(result, wanted)


def _shift(
    xp: Namespace, real: Array, axes: tuple[int, ...], temperature: Any
) -> tuple[Array, Array]:
    """(offset, (real - offset) / T): offset is the largest finite value, or 0 if none is."""
    finite = xp.isfinite(real)
    maximum = slice_maximum(xp, xp.where(finite, real, -xp.inf), axes)
    offset = xp.where(maximum == -xp.inf, 0.0, maximum)
    if may_warn_on_overflow(real):
        # Logits spanning the float range: x - offset overflows to the -inf it should be,
        # but NumPy-backed libraries warn (see `normalise.shift`).
        lower = xp.where(offset > 0.0, offset, 0.0) - float(xp.finfo(real.dtype).max)
        real = xp.where(finite & (real < lower), -xp.inf, real)
    shifted = real - offset
    if not (isinstance(temperature, float) and temperature == 1.0):
        shifted = scale(xp, shifted, temperature, nonpositive=True)
    return offset, shifted


def _real_parts(c: WeightedCall) -> tuple[Array, Array, Array]:
    """(log|S|, sign(S), offset) per slice, with ``sum b exp(x / T) = exp(offset / T) S``."""
    xp, axes = c.xp, c.axes
    x = c.x if c.included is None else xp.where(c.included, c.x, -xp.inf)
    b = c.b
    if b is None:
        infinite, negative, undefined = x == xp.inf, None, None
    else:
        b = xp.where(c.included, b, 0.0)  # (c.included is set whenever b is)
        # Entries whose term is infinite (+inf logits, infinite weights) decide their slice
        # alone; an infinite weight on a -inf logit is 0 * inf, undefined.
        infinite_weight = xp.isinf(b)
        infinite = (x == xp.inf) | (infinite_weight & (x > -xp.inf))
        negative = infinite & (b < 0.0)
        undefined = xp.any(infinite_weight & (x == -xp.inf), axis=axes, keepdims=True)
        b = xp.where(infinite_weight, 0.0, b)
        b, doublings = _scaled_weights(xp, b, axes)
    # The finite terms alone, so that no inf - inf or 0 * inf is ever formed (and no
    # gradient meets one): the slices they would reach are replaced below by constants.
    offset, shifted = _shift(xp, xp.where(infinite, -xp.inf, x), axes, c.temperature)
    at_top = shifted == 0.0
    exp_shifted = xp.exp(shifted)
    if b is None:
        top = xp.sum(xp.astype(at_top, x.dtype), axis=axes, keepdims=True)
        tail = xp.sum(xp.where(at_top, 0.0, exp_shifted), axis=axes, keepdims=True)
    else:
        top = xp.sum(xp.where(at_top, b, 0.0), axis=axes, keepdims=True)
        tail = xp.sum(xp.where(at_top, 0.0, b * exp_shifted), axis=axes, keepdims=True)
    log_magnitude, sign = _log_abs(xp, top, tail)
    if b is not None:
        log_magnitude = log_magnitude + doublings * math.log(2.0)

    positive_inf = xp.any(
        infinite if negative is None else infinite & ~negative, axis=axes, keepdims=True
    )
    if negative is None:
        log_magnitude = xp.where(positive_inf, xp.inf, log_magnitude)
        sign = xp.where(positive_inf, 1.0, sign)
        return log_magnitude, sign, offset
    negative_inf = xp.any(negative, axis=axes, keepdims=True)
    log_magnitude = xp.where(positive_inf | negative_inf, xp.inf, log_magnitude)
    sign = xp.where(positive_inf, 1.0, xp.where(negative_inf, -1.0, sign))
    # inf - inf and 0 * inf: NaN, as IEEE arithmetic (and SciPy) has it.
    unknown = (positive_inf & negative_inf) | undefined
    return xp.where(unknown, xp.nan, log_magnitude), xp.where(unknown, xp.nan, sign), offset


def _scaled_weights(xp: Namespace, b: Array, axes: tuple[int, ...]) -> tuple[Array, Array]:
    """(b scaled per slice by 2**-k, k): weights near the float limit would overflow the sum
    (and warn), so a slice whose largest weight passes a bound is scaled below it, exactly,
    and k doublings are added back to the log of the sum."""
    n = 1
    for a in axes:  # (a loop, not a generator: torch.compile traces it)
        n *= b.shape[a]
    doublings = halvings(xp, slice_maximum(xp, xp.abs(b), axes), sum_safe_bound(xp, b.dtype, n))
    return b * 2.0**-doublings, doublings


def _log_abs(xp: Namespace, top: Array, tail: Array) -> tuple[Array, Array]:
    """(log|top + tail|, sign(top + tail)) for real per-slice sums, accurate when top dominates."""
    near = (xp.abs(tail) <= 0.5 * xp.abs(top)) & (top != 0.0)
    # Safe operands where a branch is not taken, so that neither its value nor its gradient
    # (which `where` multiplies by 0) is ever inf or NaN.
    ratio = xp.where(near, tail, 0.0) / xp.where(near, top, 1.0)
    via_top = xp.log(xp.abs(xp.where(near, top, 1.0))) + xp.log1p(ratio)
    total = top + tail
    nonzero = total != 0.0
    via_total = xp.log(xp.where(nonzero & ~near, xp.abs(total), 1.0))
    log_magnitude = xp.where(near, via_top, xp.where(nonzero, via_total, -xp.inf))
    # The sign by comparisons, not xp.sign: array-api-compat's sign for torch writes NaN into
    # its result through a boolean mask, which torch.func.vmap cannot batch.
    undecided = xp.where(xp.isnan(total), total, 0.0)  # NaN stays NaN, zeros give 0
    return log_magnitude, xp.where(total > 0.0, 1.0, xp.where(total < 0.0, -1.0, undecided))


# ---- complex input ------------------------------------------------------------------------


def _from_parts(xp: Namespace, real: Array, imaginary: Array, dtype: Any) -> Array:
    """The complex array ``real + i imaginary``, without an inf * 0 (NaN) in its real part.

    The standard has no constructor from parts: multiplying by 1j is exact for finite
    parts, and a NaN imaginary part is put in by adding the constant ``0 + nan i``.
    """
    finite = xp.isfinite(imaginary)
    i_times = xp.astype(xp.where(finite, imaginary, 0.0), dtype) * 1j
    nan = xp.asarray(complex(0.0, math.nan), dtype=dtype, device=array_device(real))
    i_times = xp.where(finite, i_times, nan)
    return xp.astype(real, dtype) + i_times


def _complex_terms(c: WeightedCall) -> tuple[Array, Array, Array, Array]:
    """(offset, at_top, real and imaginary parts of each included term ``b exp(z)``), with
    ``z = (x - offset) / T`` and at_top marking the terms whose real exponent is the largest."""
    xp, x = c.xp, c.x
    real = xp.real(x)
    if c.included is not None:
        real = xp.where(c.included, real, -xp.inf)
    offset, shifted = _shift(xp, real, c.axes, c.temperature)
    if isinstance(c.temperature, float) and c.temperature == 1.0:
        z = x - xp.astype(offset, x.dtype)
    else:
        # Each part divided by T on its own: a complex division would overflow (and warn)
        # for a tiny T, and a mixed real-complex one is not in the standard.
        imaginary = scale(xp, xp.asarray(xp.imag(x), copy=True), c.temperature)
        z = _from_parts(xp, shifted, imaginary, x.dtype)
    at_top = (xp.real(z) == 0.0) & xp.isfinite(xp.imag(z))
    if c.included is not None:
        at_top = at_top & c.included
    terms = _exp(xp, z)
    silent = may_warn_on_overflow(terms)
    if c.b is not None and not silent:
        terms = terms * c.b  # (c.b has x's complex dtype)
    terms_re, terms_im = xp.real(terms), xp.imag(terms)
    if c.b is not None and silent:
        terms_re, terms_im = _weigh(xp, terms_re, terms_im, c.b)
    if c.included is not None:
        # (after the weighting: excluded entries may hold anything, NaN or inf included.)
        terms_re = xp.where(c.included, terms_re, 0.0)
        terms_im = xp.where(c.included, terms_im, 0.0)
    return offset, at_top, terms_re, terms_im


def _complex_parts(c: WeightedCall) -> tuple[Array, Array, Array]:
    """(log|S|, arg S in (-pi, pi], offset) per slice, with sum b exp(x / T) = exp(offset / T) S."""
    xp, axes = c.xp, c.axes
    offset, at_top, terms_re, terms_im = _complex_terms(c)
    top_re = _sum(xp, xp.where(at_top, terms_re, 0.0), axes)
    top_im = _sum(xp, xp.where(at_top, terms_im, 0.0), axes)
    tail_re = _sum(xp, xp.where(at_top, 0.0, terms_re), axes)
    tail_im = _sum(xp, xp.where(at_top, 0.0, terms_im), axes)
    count = xp.sum(xp.astype(at_top, c.real_dtype), axis=axes, keepdims=True)
    # With nothing at the top, the sum is the tail itself, signed zeros and all: the phase
    # of a sum of zeros is the angle those zeros make (SciPy, via the C99 logarithm).
    total_re = xp.where(count == 0.0, tail_re, _add(xp, top_re, tail_re))
    total_im = xp.where(count == 0.0, tail_im, _add(xp, top_im, tail_im))

    top_abs = xp.hypot(top_re, top_im)
    near = (xp.hypot(tail_re, tail_im) <= 0.5 * top_abs) & (top_abs > 0.0)
    # log(top) + log1p(tail / top), for a dominant top.
    safe_abs = xp.where(near, top_abs, 1.0)
    log_top = xp.log(safe_abs)
    # One entry at the top has |top| = |b| exactly (its exp has real part 0): log|b| keeps the
    # digits that hypot(cos, sin), 1 up to rounding, would lose when the result is near 0.
    if c.b is None:
        log_top = xp.where(count == 1.0, 0.0, log_top)
    else:
        top_weight = xp.sum(xp.where(at_top, xp.abs(c.b), 0.0), axis=axes, keepdims=True)
        lone = (count == 1.0) & near
        lone_log = xp.log(xp.where(lone, top_weight, 1.0))
        log_top = xp.where(lone, lone_log, log_top)
    unit_re = xp.where(near, top_re, 1.0) / safe_abs
    unit_im = xp.where(near, top_im, 0.0) / safe_abs
    # (The tail masked first: an infinite tail times a zero part would be inf * 0.)
    near_re, near_im = xp.where(near, tail_re, 0.0), xp.where(near, tail_im, 0.0)
    ratio_re = (near_re * unit_re + near_im * unit_im) / safe_abs
    ratio_im = (near_im * unit_re - near_re * unit_im) / safe_abs
    log1p_re = 0.5 * xp.log1p(ratio_re * (2.0 + ratio_re) + ratio_im * ratio_im)
    log1p_im = xp.atan2(ratio_im, 1.0 + ratio_re)
    via_top_phase = _wrap(xp, xp.atan2(unit_im, unit_re) + log1p_im)

    total_abs = xp.hypot(total_re, total_im)
    nonzero = total_abs != 0.0
    via_total = xp.log(xp.where(nonzero, total_abs, 1.0))
    log_magnitude = xp.where(near, log_top + log1p_re, xp.where(nonzero, via_total, -xp.inf))
    phase = xp.where(near, via_top_phase, xp.atan2(total_im, total_re))
    return log_magnitude, phase, offset


def _exp(xp: Namespace, z: Array) -> Array:
    """The library's own complex exp, without NumPy-backed libraries' warnings.

    Those warn (and return NaN parts) for an infinite or NaN imaginary part with a real part
    other than -inf, and for a NaN real part with a nonzero imaginary one; the values they
    return there are put in directly.
    """
    if not may_warn_on_overflow(z):
        return xp.exp(z)
    re, im = xp.real(z), xp.imag(z)
    invalid = (~xp.isfinite(im) & (re != -xp.inf)) | (xp.isnan(re) & (im != 0.0))
    values = xp.exp(xp.where(invalid, xp.zeros_like(z), z))
    device = array_device(z)
    at_inf = xp.asarray(complex(math.inf, math.nan), dtype=z.dtype, device=device)
    nowhere = xp.asarray(complex(math.nan, math.nan), dtype=z.dtype, device=device)
    return xp.where(invalid, xp.where(re == xp.inf, at_inf, nowhere), values)


def _weigh(xp: Namespace, re: Array, im: Array, b: Array) -> tuple[Array, Array]:
    """(re + i im) * b for complex b, as the library's complex product has it (inf * 0 is
    NaN), without NumPy-backed libraries' warnings."""
    b_re, b_im = xp.real(b), xp.imag(b)
    product_re = _add(xp, _multiply(xp, re, b_re), -_multiply(xp, im, b_im))
    product_im = _add(xp, _multiply(xp, re, b_im), _multiply(xp, im, b_re))
    return product_re, product_im


def _multiply(xp: Namespace, a: Array, b: Array) -> Array:
    """a * b, with inf * 0 the NaN it is in IEEE arithmetic, but never formed (it warns)."""
    undefined = (xp.isinf(a) & (b == 0.0)) | ((a == 0.0) & xp.isinf(b))
    return xp.where(undefined, xp.nan, a * xp.where(undefined, 1.0, b))


def _add(xp: Namespace, a: Array, b: Array) -> Array:
    """a + b, with inf + -inf the NaN it is in IEEE arithmetic, but never formed."""
    if not may_warn_on_overflow(a):
        return a + b
    undefined = xp.isinf(a) & (a == -b)
    return xp.where(undefined, xp.nan, xp.where(undefined, 0.0, a) + b)


def _sum(xp: Namespace, values: Array, axes: tuple[int, ...]) -> Array:
    """The IEEE sum along `axes` (keepdims), with inf + -inf giving NaN without a warning."""
    if not may_warn_on_overflow(values):
        return xp.sum(values, axis=axes, keepdims=True)  # (only NumPy's kernels warn)
    infinite = xp.isinf(values)
    finite_sum = xp.sum(xp.where(infinite, 0.0, values), axis=axes, keepdims=True)
    plus = xp.any(values == xp.inf, axis=axes, keepdims=True)
    minus = xp.any(values == -xp.inf, axis=axes, keepdims=True)
    total = xp.where(plus, xp.inf, xp.where(minus, -xp.inf, finite_sum))
    return xp.where((plus & minus) | xp.isnan(finite_sum), xp.nan, total)


def _wrap(xp: Namespace, angle: Array) -> Array:
    """An angle in (-2 pi, 2 pi] brought into (-pi, pi]; angles already there are unchanged."""
    angle = xp.where(angle > math.pi, angle - 2.0 * math.pi, angle)
    return xp.where(angle <= -math.pi, angle + 2.0 * math.pi, angle)
