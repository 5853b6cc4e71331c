"""Shift, scale, exponentiate and sum: the one implementation of the math every function uses.

For a slice with maximum m and temperature T we work with the shifted logits
``z = (x - m) / T`` (Blanchard, Higham & Higham 2021: shift first, then divide), whose
exponentials lie in [0, 1] with at least one exactly 1. Their sum ``c + t`` splits into the
c entries that equal the maximum and the tail t of the others; ``log(c) + log1p(t / c)``
keeps the digits that ``log(c + t)`` loses when one logit dominates.

Special values (spec: Special values) are handled on the per-slice maximum, which is small: an empty slice
(maximum -inf) is shifted by 0, and a slice holding +inf is replaced by 0 at its +inf
entries and -inf elsewhere. Eager arrays only pay for that full-size pass when some slice
needs it; lazy arrays (traced, or task graphs) always take it, since asking would run them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._platform import (
    Array,
    Namespace,
    all_below_now,
    array_device,
    can_update_in_place,
    may_warn_on_overflow,
    on_host,
    records_gradients,
    surely_false,
)
from .._validation import Prepared
from .arithmetic import (
    divide,
    exponentiate,
    overflow_free,
    scale,
    slice_maximum,
    subtract,
)
from .indexing import put_at, slice_key, take_along

__all__ = [
    "Normalised",
    "below_top",
    "complement",
    "log_probabilities",
    "log_sum_exp",
    "log_total",
    "normalise",
    "probabilities",
    "shift",
    "top_count_and_tail",
]


@dataclass(slots=True)
class Normalised:
    """Per-slice statistics of one input; every reduced array keeps the reduced axes."""

    shifted: Array  # (x - offset) / T, -inf at excluded entries; None with totals_only
    exp_shifted: Array  # exp(shifted), in [0, 1]; None when summed in blocks
    maximum: Array  # the slice's maximum, which may be +-inf or NaN
    offset: Array  # the maximum actually subtracted: 0 where the maximum is infinite
    total: Array  # sum of exp_shifted: 0 for a slice with nothing in it
    # Every maximum is known to be finite: no slice is empty, holds +inf or NaN, and each
    # total is at least 1 (the maximum's own exp(0)), unless the maximum was left out.
    ordinary: bool = False
    # With `leave_out`: the shifted logits at the left-out entries, which `total` (and so
    # `safe_total` and `probabilities`) leaves out.
    left_out: Array | None = None

    def safe_total(self, p: Prepared) -> Array:
        """`total`, with empty slices' 0 replaced by 1 so they divide to 0 and not NaN."""
        if self.ordinary:
            return self.total
        return p.xp.where(self.total == 0, 1.0, self.total)


#: From this many entries on, `log_total` redoes its near-one slices alone, gathered.
_GATHER_MIN_ENTRIES = 1 << 16
#: Rows are exponentiated this many bytes at a time, in a buffer that stays in cache, when
#: only their sums are wanted ...
_BLOCK_BYTES = 1 << 21
#: ... on input of at least this many bytes (smaller input is cheaper in a few operations).
_BLOCKED_MIN_BYTES = 1 << 22


def normalise(
    p: Prepared,
    keep_shifted: bool = True,
    totals_only: bool = False,
    leave_out: Array | None = None,
    maximum: Array | None = None,
    with_total: bool = True,
    exponentials: bool = True,
) -> Normalised:
    """Shift, scale and exponentiate x along the reduced axes.

    Without `keep_shifted` the exponentials may overwrite the shifted logits, and
    ``shifted`` must not be read (softmax needs only the exponentials and their sum). With
    `totals_only` (logsumexp and the loss need only the sums) neither may be read: they may
    be None, and `keep_shifted` does not matter.

    `leave_out` (one reduced axis only) is an index per slice, shaped like x with that axis of
    length 1, of an entry that ``total`` leaves out: ``left_out`` holds its shifted logit, and
    ``exp_shifted`` is 0 there. cross_entropy leaves out the target, whose log-probability
    ``-log1p(rest)``, where it is the maximum, keeps the digits that ``log(1 + rest)`` loses.

    `maximum`, where given, is the slices' maximum, known from elsewhere (the other chunks
    of a slice split over chunks); without `with_total` the sum is not taken (``total`` is
    None), for callers that know it from elsewhere too, and without `exponentials` neither the
    exponentials nor their sum (only ``shifted``, ``maximum`` and ``offset`` may be read).
    """
    xp, x, axes = p.xp, p.x, p.axes
    if p.where is not None:
        x = xp.where(p.where, x, -xp.inf)
    if maximum is None:
        maximum = slice_maximum(xp, x, axes)
    # Ordinary input, every maximum finite and below `overflow_free`, needs none of the
    # special-value passes below; one look at the small per-slice maximum tells (eager arrays
    # only: asking a lazy one would run it). This keeps softmax to SciPy's five passes.
    ordinary = not p.lazy and all_below_now(xp, maximum, overflow_free(xp, x.dtype))
    # Subtracting an infinite maximum would make NaN (and warn); NaN maxima stay, they poison
    # their slice as they should.
    offset = maximum if ordinary else xp.where(xp.isinf(maximum), 0.0, maximum)
    if totals_only and ordinary and _in_blocks(p, offset):
        total, left_out = _blocked_total(p, offset, leave_out)
        return Normalised(None, None, maximum, offset, total, ordinary, left_out)
    # A masked x is our own copy: on the ordinary path it becomes the shifted logits in place.
    shifted = shift(p, x, maximum, offset, ordinary, own=p.where is not None and ordinary)
    left_out = key = None
    if leave_out is not None:
        key = slice_key(xp, shifted, leave_out, axes[0])
        left_out = take_along(xp, shifted, leave_out, axes[0], key)
    if not exponentials:
        return Normalised(shifted, None, maximum, offset, None, ordinary, left_out)
    # Without keep_shifted, one buffer serves the shifted logits, their exponentials and (see
    # `probabilities`) the result: fresh memory costs a page fault per page, on large arrays
    # about as much as a pass over them.
    exp_shifted = xp.exp(shifted) if keep_shifted and not totals_only else exponentiate(xp, shifted)
    if leave_out is not None:
        exp_shifted = put_at(xp, exp_shifted, leave_out, axes[0], 0.0, key=key)
    total = xp.sum(exp_shifted, axis=axes, keepdims=True) if with_total else None
    return Normalised(
        None if totals_only else shifted, exp_shifted, maximum, offset, total, ordinary, left_out
    )


def _in_blocks(p: Prepared, offset: Array) -> bool:
    """Whether `_blocked_total` serves this call: large eager input on a CPU, of a library
    whose arrays we may update, along its last axis, unmasked, with a Python temperature, and
    nothing recording gradients (the block buffer would cut their path)."""
    x = p.x
    # (Asked on every eager call of logsumexp and the loss: the cheap refusals come first.)
    entries = math.prod(x.shape)
    if entries < _BLOCKED_MIN_BYTES // 8 or p.where is not None or x.ndim < 2:
        return False
    if not isinstance(p.temperature, float) or p.axes != (x.ndim - 1,):
        return False
    if entries * (p.xp.finfo(x.dtype).bits // 8) < _BLOCKED_MIN_BYTES or records_gradients(x):
        return False
    # (The per-slice offset is a temporary of this call: as it may be updated, so may the buffer.)
    return can_update_in_place(offset) and on_host(x)


def _blocked_total(
    p: Prepared, offset: Array, leave_out: Array | None
) -> tuple[Array, Array | None]:
    """The per-row sums of ``exp((x - offset) / T)`` (ordinary input), a block of rows at a
    time in one small buffer, and with `leave_out` the shifted logits it leaves out (see
    `normalise`).

    The plain computation writes the shifted logits out to a fresh array the size of x and
    reads them back twice; here each block is shifted, exponentiated and summed while it is
    in cache, and x is read from memory once.
    """
    xp, x = p.xp, p.x
    n = x.shape[-1]
    rows = xp.reshape(x, (-1, n))  # a view, for contiguous x
    offsets = xp.reshape(offset, (-1, 1))
    count = rows.shape[0]
    block = max(1, _BLOCK_BYTES // (n * (xp.finfo(x.dtype).bits // 8)))
    device = array_device(x)
    buffer = xp.empty((min(block, count), n), dtype=x.dtype, device=device)
    totals = xp.empty((count, 1), dtype=x.dtype, device=device)
    if leave_out is not None:
        indices = xp.reshape(leave_out, (-1, 1))
        left_out = xp.empty((count, 1), dtype=x.dtype, device=device)
    for start in range(0, count, block):
        stop = min(start + block, count)
        part = buffer[: stop - start, ...]
        part[...] = rows[start:stop, ...]
        part = _shift_and_scale(xp, part, offsets[start:stop, ...], p.temperature, True, own=True)
        if leave_out is not None:
            index = indices[start:stop, ...]
            key = slice_key(xp, part, index, 1)
            left_out[start:stop, ...] = take_along(xp, part, index, 1, key)
            part = put_at(xp, exponentiate(xp, part), index, 1, 0.0, key=key)
        else:
            part = exponentiate(xp, part)
        totals[start:stop, ...] = xp.sum(part, axis=-1, keepdims=True)
    shape = tuple(offset.shape)
    if leave_out is None:
        return xp.reshape(totals, shape), None
    return xp.reshape(totals, shape), xp.reshape(left_out, shape)


def shift(
    p: Prepared, x: Array, maximum: Array, offset: Array, ordinary: bool, own: bool = False
) -> Array:
    """``(x - offset) / T`` with the special values of `normalise`, for x or any entries of
    it taken along the reduced axes (a gathered target logit, say), -inf where excluded.
    With `own` (ordinary input only), x is a temporary of ours, and may become the result."""
    xp = p.xp
    if not ordinary and may_warn_on_overflow(x):
        # Logits spanning the float range (+-1e308): x - offset overflows to the -inf it
        # should be, but NumPy-backed libraries warn; such entries are set to -inf directly.
        # (Off the ordinary path only: it costs two passes.)
        lower = xp.maximum(offset, 0.0) - xp.finfo(x.dtype).max
        x = xp.where(x < lower, -xp.inf, x)
    shifted = _shift_and_scale(xp, x, offset, p.temperature, ordinary, own)
    if not ordinary and (p.lazy or not surely_false(xp.any(maximum == xp.inf))):
        # Slices holding +inf: the +inf entries share the whole mass, the rest get none.
        # (Two selects, each with one Python scalar, as the standard allows: compilers fuse
        # them into the exponential's loop, where a full-size array of zeros would be read.)
        infinite = maximum == xp.inf
        shifted = xp.where(infinite & (x != xp.inf), -xp.inf, xp.where(infinite, 0.0, shifted))
    return shifted


def _shift_and_scale(
    xp: Namespace, x: Array, offset: Array, temperature: float | Array, ordinary: bool, own: bool
) -> Array:
    shifted = subtract(xp, x, offset) if own else x - offset
    if not isinstance(temperature, float) or temperature != 1.0:
        # (Off the ordinary path a slice holding +inf is shifted by 0: its finite entries
        # may be positive.)
        shifted = scale(xp, shifted, temperature, nonpositive=ordinary)
    return shifted


def top_count_and_tail(p: Prepared, n: Normalised) -> tuple[Array, Array, Array]:
    """(is_top, c, t): where the maximum is, how often it occurs, and the sum of the rest.

    c is at least 1 (empty slices have no maximum, and 1 keeps their divisions finite).
    """
    xp = p.xp
    is_top = n.shifted == 0
    # A sum of the mask rather than count_nonzero, whose tuple-axis keepdims emulation on
    # torch reshapes to a shape torch.compile can mistrace once it has seen other shapes.
    count = xp.sum(xp.astype(is_top, n.exp_shifted.dtype), axis=p.axes, keepdims=True)
    # (where, not maximum with a Python scalar: torch.compile cannot trace the latter.)
    count = xp.where(count == 0, 1.0, count)
    return is_top, count, _tail(xp, is_top, n.exp_shifted, p.axes)


def _tail(xp: Namespace, is_top: Array, exp_shifted: Array, axes: tuple[int, ...]) -> Array:
    """The per-slice sum of the exponentials other than the maximum's."""
    return xp.sum(xp.where(is_top, 0.0, exp_shifted), axis=axes, keepdims=True)


def log_total(p: Prepared, n: Normalised) -> Array:
    """log of the per-slice sum of exp(shifted), accurate when one entry dominates.

    Empty slices give 0 (the caller knows them by ``total == 0``).

    Only a slice whose sum is below 2 can have a lone dominant entry, whose result
    ``-log1p(t)`` would lose its relative accuracy to the rounding of ``1 + t``: there
    the tail t is summed apart and ``log1p(t)`` taken. Such a slice has exactly one entry at
    its maximum (exp(0) is exactly 1, so two would make the sum at least 2), or none when it
    is empty (t is then 0). Past 2, ``log(total)`` is at least log 2 and accurate to its
    last bits, ties included.

    The tail is read from the exponentials alone, so callers that let the exponentials
    overwrite the shifted logits can ask for it too.
    """
    xp, axes = p.xp, p.axes
    near_one = n.total < 2
    log_total = xp.log(n.safe_total(p))
    if not p.lazy:
        if surely_false(xp.any(near_one)):
            return log_total
        x_ndim = p.x.ndim
        batch = x_ndim - len(axes)
        if (
            batch > 0
            and axes == tuple(range(batch, x_ndim))
            and math.prod(p.x.shape) >= _GATHER_MIN_ENTRIES
            and can_update_in_place(log_total)
        ):
            # Typically few slices are that close to one: redo just those, picked out by a
            # boolean mask over the leading (batch) axes, rather than two more passes over all.
            # (On small input the gather's own half-dozen operations cost more than the passes.)
            rows = xp.reshape(near_one, tuple(near_one.shape[:batch]))
            terms = _exponentials_of(p, n, rows)  # a gathered copy, ours to overwrite
            terms[terms == 1.0] = 0.0
            tail = xp.sum(terms, axis=tuple(range(1, len(axes) + 1)), keepdims=True)
            log_total[rows] = xp.log1p(tail)
            return log_total
    exp_shifted = n.exp_shifted if n.exp_shifted is not None else _exponentials_of(p, n, ...)
    compiled = p.lazy and not may_warn_on_overflow(exp_shifted)
    if compiled and n.shifted is not None:
        # A compiler that materialises each reduction's input (XLA on CPU) would write the
        # exponentials out once for two reductions, beside the shifted logits the caller keeps;
        # computed again here, from ``-|shifted|`` (equal to it, shifted is <= 0, but not merged
        # with the first exp by the compiler), each reduction fuses its own and only the
        # shifted logits are written. (Callers that keep only the sums, logsumexp and the loss,
        # have no shifted logits: their exponentials are the one array written, and both
        # reductions read it.) Only for libraries with a compiler (a task graph, Dask's, keeps
        # every intermediate anyway and would only grow), and only lazy arrays: eager ones may
        # have overwritten the shifted logits with their exponentials.
        exp_shifted = xp.exp(-xp.abs(n.shifted))
    if not compiled:
        return xp.where(near_one, xp.log1p(_below_top(xp, exp_shifted, axes)), log_total)
    # A compiler may compute the logits again in each fusion that reads them (an input it
    # computed itself, a softcap say), a few ulps apart, so the maximum's exponential can fall
    # just below 1. The entries above 1/2 make the top group, by ``round(e)``: their ``e - 1``
    # is exact, so ``sum(e - round(e))`` keeps the other terms to their last digits.
    # ``total - 1`` is that sum plus the group's size less one, and the size is
    # ``total - sum(e - round(e))`` rounded, from the total already at hand: one reduction, not
    # a second one to count the group. (An empty slice's -1 becomes 0 below, and so does its log.)
    # (e - round(e) is arithmetic a compiler fuses into the reduction, where a select would be
    # written out.)
    excess = xp.sum(xp.round(exp_shifted) - exp_shifted, axis=axes, keepdims=True)
    size = xp.floor(n.total + excess + 0.5)
    rest = (size - 1.0) - excess
    return xp.where(near_one, xp.log1p(xp.where(rest > 0.0, rest, 0.0)), log_total)


def below_top(p: Prepared, n: Normalised) -> Array:
    """The per-slice sum of the exponentials below the top (the entries at the maximum
    left out), eagerly: 0 for a slice with nothing in it or holding +inf."""
    return _below_top(p.xp, n.exp_shifted, p.axes)


def _below_top(xp: Namespace, exp_shifted: Array, axes: tuple[int, ...]) -> Array:
    # Computed once, the maximum's exponential is exactly 1 and floor(e) marks it alone:
    # e - floor(e) is the tail's terms. (floor(e) - e is formed in floor's memory, and the
    # small sum negated.)
    return -xp.sum(subtract(xp, xp.floor(exp_shifted), exp_shifted), axis=axes, keepdims=True)


def _exponentials_of(p: Prepared, n: Normalised, rows: Any) -> Array:
    """``n.exp_shifted`` at the batch positions `rows` (a boolean mask, or ``...`` for all),
    as a new array; computed again from x where they were not kept (`_blocked_total`)."""
    if n.exp_shifted is not None:
        return n.exp_shifted[rows]
    shifted = _shift_and_scale(p.xp, p.x[rows], n.offset[rows], p.temperature, True, False)
    return exponentiate(p.xp, shifted)


def log_probabilities(p: Prepared) -> Array:
    """log_softmax in the compute dtype, for callers that round later."""
    n = normalise(p)
    # Empty slices have log_total 0, so their -inf entries stay -inf.
    return subtract(p.xp, n.shifted, log_total(p, n))


def log_sum_exp(p: Prepared) -> Array:
    """logsumexp in the compute dtype, with the reduced axes kept."""
    n = normalise(p, totals_only=True)
    xp = p.xp
    out = n.offset + p.temperature * log_total(p, n)
    # Constants, not the maximum itself, so that no gradient flows out of an empty slice.
    out = xp.where(n.maximum == xp.inf, xp.inf, out)
    return xp.where(n.total == 0, -xp.inf, out)


def probabilities(p: Prepared, n: Normalised) -> Array:
    """softmax: exp(shifted) / total, with empty slices all 0.

    It may reuse the memory of ``n.exp_shifted``: take everything else you need from ``n`` first.
    """
    return divide(p.xp, n.exp_shifted, n.safe_total(p))


def complement(p: Prepared, n: Normalised, top: tuple[Array, Array, Array], s: Array) -> Array:
    """1 - s without cancellation: at a maximum it is (c - 1 + t) / (c + t).

    ``top`` is `top_count_and_tail` of ``n``, ``s`` the probabilities.
    """
    is_top, count, tail = top
    at_top = (count - 1.0 + tail) / n.safe_total(p)
    return p.xp.where(is_top, at_top, 1.0 - s)
