"""Exact reference values of the softmax family, computed with mpmath.

The oracle the tests and the accuracy reports measure against. It takes NumPy arrays holding the
input values exactly as the backend saw them (already rounded to the test dtype) and returns NumPy
object arrays of `mpmath.mpf`, computed at `DEFAULT_DIGITS` decimal digits (at least 50): far more
than float64 needs for its result to be the correctly rounded value of the exact one.

The semantics are the spec's (docs: Specification), written out directly and per slice, with none
of the library's algorithm (no shifted-tail tricks): the special-value table (empty slices, +inf,
NaN, masks), temperature as a number or one value per slice, and `axis` as an int, a tuple or None.

`ulp_error` turns a backend's result into an error in units of the test dtype's epsilon, relative
to the exact value (with the smallest normal number as the floor, so that results near 0 are
measured in absolute terms there).

Examples
--------
>>> import numpy as np
>>> from xpsoftmax.testing import oracle
>>> exact = oracle.softmax(np.array([0.0, -40.0]))
>>> float(exact[1])
4.248354255291589e-18
>>> float(oracle.ulp_error(np.array([1.0, 4.248354255291589e-18]), exact, "float64").max()) < 1
True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import mpmath
import numpy as np

__all__ = [
    "DEFAULT_DIGITS",
    "EPS",
    "TINY",
    "cross_entropy",
    "log_softmax",
    "log_softmax_jacobian",
    "log_softmax_jvp",
    "log_softmax_vjp",
    "logsumexp",
    "round_to",
    "softmax",
    "softmax_jacobian",
    "softmax_jvp",
    "softmax_vjp",
    "to_float",
    "ulp_error",
]

#: Working precision in decimal digits.
DEFAULT_DIGITS = 100

#: Machine epsilon (spacing of floats in [1, 2)) of each test dtype.
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
#: Smallest positive normal number of each test dtype.
TINY = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}

Axis = int | tuple[int, ...] | None

_NAN = mpmath.mpf("nan")
_INF = mpmath.mpf("inf")
_ZERO = mpmath.mpf(0)


# -- slicing: move the reduced axes to the end and flatten them ------------------------------------


def _axes(axis: Axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes) if ndim else ()


class _Slices:
    """x, temperature and where as (batch, n) rows, and the way back to x's layout."""

    def __init__(self, x: Any, axis: Axis, temperature: Any, where: Any) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.shape = x.shape
        self.axes = _axes(axis, x.ndim)
        self.kept = tuple(a for a in range(x.ndim) if a not in self.axes)
        self.order = self.kept + self.axes
        self.batch = tuple(x.shape[a] for a in self.kept)
        self.n = math.prod(x.shape[a] for a in self.axes)
        self.x = self._rows(x)
        t = np.broadcast_to(np.asarray(temperature, dtype=np.float64), x.shape)
        # One temperature per slice: it is constant along the reduced axes.
        self.t = self._rows(t)[:, 0] if self.n else np.ones(len(self.x))
        w = np.ones(x.shape, bool) if where is None else np.broadcast_to(where, x.shape)
        self.w = self._rows(np.asarray(w, dtype=bool))

    def _rows(self, a: np.ndarray) -> np.ndarray:
        a = np.broadcast_to(a, self.shape)
        return np.transpose(a, self.order).reshape((math.prod(self.batch), self.n))

    def operand(self, a: Any) -> np.ndarray:
        """A second input (v, g, probabilities) broadcast to x and laid out as rows."""
        return self._rows(np.asarray(a, dtype=np.float64))

    def full(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Rows of results, one per entry, back in x's layout."""
        out = np.empty((len(rows), self.n), dtype=object)
        for i, row in enumerate(rows):
            out[i, :] = list(row) if self.n else []
        out = out.reshape(self.batch + tuple(self.shape[a] for a in self.axes))
        return np.transpose(out, np.argsort(self.order))

    def reduced(self, values: Sequence[Any], keepdims: bool = False) -> np.ndarray:
        """One result per slice, shaped like x without (or, keepdims, with length-1) axes."""
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        if keepdims:
            return out.reshape(tuple(1 if a in self.axes else n for a, n in enumerate(self.shape)))
        return out.reshape(self.batch)


# -- one slice ---------------------------------------------------------------------------------------


class _Slice:
    """Exact softmax statistics of one slice: its kind, probabilities and log-probabilities."""

    def __init__(self, x: np.ndarray, t: float, w: np.ndarray) -> None:
        self.n = len(x)
        self.w = w
        self.t = mpmath.mpf(t)
        included = x[w]
        self.log_s: list[Any]
        if np.isnan(included).any():
            self.kind = "nan"
            self.s = [_NAN] * self.n
            self.log_s = [_NAN] * self.n
            self.lse = _NAN
            return
        at_inf = w & (x == np.inf)
        if at_inf.any():
            self.kind = "inf"
            k = int(at_inf.sum())
            self.s = [mpmath.mpf(1) / k if a else _ZERO for a in at_inf]
            self.log_s = [-mpmath.log(k) if a else -_INF for a in at_inf]
            self.lse = _INF
            return
        finite = w & np.isfinite(x)
        if not finite.any():
            self.kind = "empty"
            self.s = [_ZERO] * self.n
            self.log_s = [-_INF] * self.n
            self.lse = -_INF
            return
        self.kind = "finite"
        m = mpmath.mpf(float(x[finite].max()))
        z = [
            (mpmath.mpf(float(v)) - m) / self.t if f else None
            for v, f in zip(x, finite, strict=True)
        ]
        e = [mpmath.exp(v) if v is not None else _ZERO for v in z]
        total = mpmath.fsum(e)
        log_total = mpmath.log(total)
        self.s = [v / total for v in e]
        self.log_s = [v - log_total if v is not None else -_INF for v in z]
        self.lse = m + self.t * log_total

    def dot(self, v: np.ndarray) -> Any:
        """<s, v> over the included entries; v at excluded entries is never read."""
        return mpmath.fsum(
            s * mpmath.mpf(float(a)) for s, a, w in zip(self.s, v, self.w, strict=True) if w
        )

    def jacobian(self, log: bool) -> list[list[Any]]:
        if self.kind == "nan":
            return [[_NAN] * self.n for _ in range(self.n)]
        rows = []
        for i in range(self.n):
            row = []
            for j in range(self.n):
                if not (self.w[i] and self.w[j]):
                    row.append(_ZERO)
                    continue
                delta = 1 if i == j else 0
                row.append(
                    ((delta - self.s[j]) if log else self.s[i] * (delta - self.s[j])) / self.t
                )
            rows.append(row)
        return rows


def _map(
    x: Any, axis: Axis, temperature: Any, where: Any, fn: Callable[[_Slice, int], Any]
) -> tuple[_Slices, list[Any]]:
    with mpmath.workdps(DEFAULT_DIGITS):
        sl = _Slices(x, axis, temperature, where)
        out = [fn(_Slice(sl.x[b], sl.t[b], sl.w[b]), b) for b in range(len(sl.x))]
    return sl, out


# -- public functions --------------------------------------------------------------------------------


def softmax(x: Any, axis: Axis = -1, temperature: Any = 1.0, where: Any = None) -> np.ndarray:
    """Exact ``softmax(x / T)`` over `axis` (spec: Definitions), as mpf objects."""
    sl, rows = _map(x, axis, temperature, where, lambda s, b: s.s)
    return sl.full(rows)


def log_softmax(x: Any, axis: Axis = -1, temperature: Any = 1.0, where: Any = None) -> np.ndarray:
    """Exact ``log_softmax(x / T)`` over `axis`: -inf at excluded entries."""
    sl, rows = _map(x, axis, temperature, where, lambda s, b: s.log_s)
    return sl.full(rows)


def logsumexp(
    x: Any, axis: Axis = -1, temperature: Any = 1.0, where: Any = None, keepdims: bool = False
) -> np.ndarray:
    """Exact ``T * log(sum exp(x / T))`` over `axis`."""
    sl, values = _map(x, axis, temperature, where, lambda s, b: s.lse)
    return sl.reduced(values, keepdims)


def _jacobian(x: Any, axis: int, temperature: Any, where: Any, log: bool) -> np.ndarray:
    if not isinstance(axis, int):
        raise TypeError("the Jacobians take one int axis")
    sl, mats = _map(x, axis, temperature, where, lambda s, b: s.jacobian(log))
    out = np.empty((len(mats), sl.n, sl.n), dtype=object)
    for b, mat in enumerate(mats):
        for i, row in enumerate(mat):
            out[b, i, :] = row
    return out.reshape((*sl.batch, sl.n, sl.n))


def softmax_jacobian(
    x: Any, axis: int = -1, temperature: Any = 1.0, where: Any = None
) -> np.ndarray:
    """Exact ``J[..., i, j] = s_i (delta_ij - s_j) / T``, shape ``(*batch, n, n)``."""
    return _jacobian(x, axis, temperature, where, log=False)


def log_softmax_jacobian(
    x: Any, axis: int = -1, temperature: Any = 1.0, where: Any = None
) -> np.ndarray:
    """Exact ``J[..., i, j] = (delta_ij - s_j) / T`` on included i, j; 0 elsewhere."""
    return _jacobian(x, axis, temperature, where, log=True)


def _product(x: Any, u: Any, axis: int, temperature: Any, where: Any, kind: str) -> np.ndarray:
    """The four Jacobian products; `u` is v (JVP) or g (VJP), ignored at excluded entries."""
    if not isinstance(axis, int):
        raise TypeError("the Jacobian products take one int axis")
    u_rows: list[np.ndarray] = []

    def row(s: _Slice, b: int) -> list[Any]:
        if s.kind == "nan":
            return [_NAN] * s.n
        u = u_rows[0][b]
        uu = [mpmath.mpf(float(a)) for a in u]
        if kind == "log_vjp":
            total = mpmath.fsum(a for a, w in zip(uu, s.w, strict=True) if w)
            values = [(a - si * total) / s.t for a, si in zip(uu, s.s, strict=True)]
        else:
            inner = s.dot(u)
            values = [(a - inner) / s.t for a in uu]
            if kind == "softmax":
                values = [si * v for si, v in zip(s.s, values, strict=True)]
        return [v if w else _ZERO for v, w in zip(values, s.w, strict=True)]

    with mpmath.workdps(DEFAULT_DIGITS):
        sl = _Slices(x, axis, temperature, where)
        u_rows.append(sl.operand(u))
        out = [row(_Slice(sl.x[b], sl.t[b], sl.w[b]), b) for b in range(len(sl.x))]
    return sl.full(out)


def _exact_product(name: str, kind: str, doc: str) -> Callable[..., np.ndarray]:
    """The oracle's product `name`, ``name(x, vector, axis=-1, temperature=1.0, where=None)``
    with v (a JVP) or g (a VJP) as `vector`: the four share one signature and one computation
    (`_product`, of `kind`)."""

    def product(
        x: Any, vector: Any, axis: int = -1, temperature: Any = 1.0, where: Any = None
    ) -> np.ndarray:
        return _product(x, vector, axis, temperature, where, kind)

    product.__name__ = product.__qualname__ = name
    product.__doc__ = doc
    return product


softmax_jvp = _exact_product("softmax_jvp", "softmax", "Exact ``J v = s * (v - <s, v>) / T``.")
softmax_vjp = _exact_product(
    "softmax_vjp", "softmax", "Exact ``g^T J``, equal to the JVP since J is symmetric."
)
log_softmax_jvp = _exact_product(
    "log_softmax_jvp", "log_jvp", "Exact ``(v - <s, v>) / T`` on included entries, 0 elsewhere."
)
log_softmax_vjp = _exact_product(
    "log_softmax_vjp",
    "log_vjp",
    "Exact ``(g - s * sum_W g) / T`` on included entries, 0 elsewhere.",
)


def cross_entropy(
    logits: Any,
    target: Any,
    axis: int = -1,
    temperature: Any = 1.0,
    where: Any = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Any:
    """Exact cross-entropy ``-sum_i q_i log_softmax_i`` per sample, then reduced.

    `target` holds integer class indices (logits' shape without `axis`) or probabilities (logits'
    shape). q is smoothed to ``(1 - eps) q + eps / K`` with K the length of `axis`; classes with
    q = 0 add 0 (even at a -inf log-probability) and excluded classes add nothing.
    Returns an object array for ``reduction="none"``, else one mpf.
    """
    logits = np.asarray(logits, dtype=np.float64)
    target = np.asarray(target)
    ax = axis % logits.ndim
    n = logits.shape[ax]
    if target.dtype.kind in "iu":
        q = np.expand_dims(target, ax) == np.arange(n).reshape((n,) + (1,) * (logits.ndim - 1 - ax))
        q = q.astype(np.float64)
    else:
        q = np.asarray(target, dtype=np.float64)
    eps = mpmath.mpf(label_smoothing)
    q_rows: list[np.ndarray] = []

    def loss(s: _Slice, b: int) -> Any:
        terms = []
        for qi, log_si, w in zip(q_rows[0][b], s.log_s, s.w, strict=True):
            qq = (1 - eps) * mpmath.mpf(float(qi)) + eps / n
            if w and qq != 0:
                terms.append(qq * log_si)
        return -mpmath.fsum(terms) if terms else _ZERO

    with mpmath.workdps(DEFAULT_DIGITS):
        sl = _Slices(logits, ax, temperature, where)
        q_rows.append(sl.operand(q))
        per_sample = [loss(_Slice(sl.x[b], sl.t[b], sl.w[b]), b) for b in range(len(sl.x))]
        if reduction == "none":
            return sl.reduced(per_sample)
        total = mpmath.fsum(per_sample)
        if reduction == "mean":
            total = total / max(len(per_sample), 1)
        return total


# -- measuring ---------------------------------------------------------------------------------------


def to_float(exact: Any) -> np.ndarray:
    """The exact values rounded to float64 (correctly rounded: mpf to float rounds to nearest)."""
    arr = np.asarray(exact, dtype=object)
    return np.array([float(v) for v in arr.flat], dtype=np.float64).reshape(arr.shape)


def ulp_error(result: Any, exact: Any, dtype: str) -> np.ndarray:
    """``|result - exact| / max(|exact|, tiny) / eps``, elementwise, in float64.

    Matching infinities (same sign) and NaN against NaN count as 0; any other mismatch of
    non-finite values is inf. ``tiny`` and ``eps`` are those of `dtype` ("float16", "bfloat16",
    "float32" or "float64"). A correctly rounded result has error at most 0.5; a result within one
    ulp of the exact value has error at most 1.
    """
    eps, tiny = mpmath.mpf(EPS[dtype]), mpmath.mpf(TINY[dtype])
    res = np.asarray(result, dtype=np.float64)
    ex = np.broadcast_to(np.asarray(exact, dtype=object), res.shape)
    out = np.empty(res.shape, dtype=np.float64)
    with mpmath.workdps(DEFAULT_DIGITS):
        for idx in np.ndindex(res.shape):
            r, e = float(res[idx]), mpmath.mpf(ex[idx])
            if mpmath.isnan(e) or mpmath.isinf(e) or not math.isfinite(r):
                same = (math.isnan(r) and mpmath.isnan(e)) or (
                    not mpmath.isnan(e) and mpmath.mpf(r) == e
                )
                out[idx] = 0.0 if same else math.inf
                continue
            out[idx] = float(abs(mpmath.mpf(r) - e) / max(abs(e), tiny) / eps)
    return out


def round_to(a: Any, dtype: str) -> np.ndarray:
    """`a` rounded (to nearest, ties to even) to `dtype` and returned as float64.

    bfloat16, which NumPy lacks, is rounded from float32 by its bit pattern.
    """
    values = np.asarray(a, dtype=np.float64)
    if dtype == "bfloat16":
        bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
        out = rounded.view(np.float32).astype(np.float64)
        return np.where(np.isnan(values), np.nan, out)
    return values.astype(dtype).astype(np.float64)
