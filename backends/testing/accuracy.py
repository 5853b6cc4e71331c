"""Accuracy harness: input families, the exact values, and errors of xpsoftmax and its peers.

One module for the accuracy tests (``tests/test_accuracy.py``), the docs' accuracy report
(``docs/scripts/accuracy_report.py``) and the command line, so they measure the same inputs the same
way. A *family* is a function ``(dtype, rng, rows, n) -> Case`` whose logits are NumPy float64 values
already representable in `dtype` (rounded with `oracle.round_to`), so the oracle sees exactly what the
backend sees. Errors are in units of the dtype's machine epsilon relative to the exact value, floored
at the smallest normal number (`oracle.ulp_error`'s measure, computed here vectorised from a
double-double copy of the exact values, so that a 1e5-long row is measured in milliseconds).

The peers are the frameworks' own functions (`Backend.ref_softmax` and friends: SciPy for NumPy,
``jax.nn``, ``torch.nn.functional``), given the input as a user would write it for them:
``x / T`` in the input dtype and ``-inf`` at excluded entries.

Examples
--------
>>> import numpy as np
>>> from xpsoftmax.testing import accuracy
>>> case = accuracy.make_case("dominant", "float32", np.random.default_rng(0), rows=2, n=50)
>>> exact = accuracy.exact_values(case, "log_softmax")
>>> import xpsoftmax
>>> float(accuracy.vectorised_ulp_error(xpsoftmax.log_softmax(case.x.astype("float32")), exact,
...                             "float32").max()) < 4
True
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import mpmath
import numpy as np
from xpsoftmax.backends import Variant, get

from . import oracle

__all__ = [
    "FAMILIES",
    "PEERS",
    "PEER_FUNCTIONS",
    "Case",
    "Exact",
    "exact_values",
    "flushes_subnormals",
    "make_case",
    "max_error",
    "run_peer",
    "run_xpsoftmax",
    "vectorised_ulp_error",
]

#: The functions every peer has, and the ones this harness measures.
PEER_FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
#: Peer name -> the backend whose reference functions it is.
PEERS = {"scipy": "numpy", "jax.nn": "jax", "torch": "torch"}
#: Largest exponent of each dtype: results beyond its range round to +-inf.
_EMAX = {"float16": 15, "bfloat16": 127, "float32": 127, "float64": 1023}
#: Magnitude of the "huge" family: near the top of each dtype's range.
_HUGE = {"float16": 6.0e4, "bfloat16": 3.0e38, "float32": 3.0e38, "float64": 1.0e308}


@dataclasses.dataclass(frozen=True)
class Case:
    """One input: logits `x` (float64, representable in `dtype`), temperature and mask, axis -1."""

    family: str
    dtype: str
    x: np.ndarray
    temperature: float | np.ndarray = 1.0  # a float, or one value per row: shape (rows, 1)
    where: np.ndarray | None = None

    def spread(self) -> np.ndarray:
        """Per row, ``(max - min) / T`` over the included finite logits: what softmax's error grows with."""
        included = np.isfinite(self.x) if self.where is None else np.isfinite(self.x) & self.where
        hi: np.ndarray = np.max(np.where(included, self.x, -np.inf), axis=-1, keepdims=True)
        lo: np.ndarray = np.min(np.where(included, self.x, np.inf), axis=-1, keepdims=True)
        with np.errstate(over="ignore"):  # huge logits: the spread itself may overflow
            spread: np.ndarray = (hi - lo) / np.asarray(self.temperature, dtype=np.float64)
        return np.squeeze(spread, axis=-1)


# -- families ------------------------------------------------------------------------------------------

Family = Callable[[str, np.random.Generator, int, int], Case]


def _normal(scale: float) -> Family:
    def family(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
        return Case(
            f"normal(0,{scale:g})", dtype, oracle.round_to(rng.normal(0, scale, (rows, n)), dtype)
        )

    return family


def _dominant(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    # One logit at 0, the rest 30 to 60 below it: log_softmax there is about -n e^-30, which
    # max - log(sum) rounds to 0.
    x = -rng.uniform(30.0, 60.0, (rows, n))
    x[np.arange(rows), rng.integers(0, n, rows)] = 0.0
    return Case("dominant", dtype, oracle.round_to(x, dtype))


def _near_ties(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    # A few entries exactly at the maximum, some a few ulps below it, the rest far below:
    # log_softmax at the ties is -log(c) - log1p(t / c) with a tiny tail t.
    top = oracle.round_to(rng.normal(0.0, 1.0, (rows, 1)), dtype)
    ulp = oracle.EPS[dtype] * 2.0 ** np.floor(np.log2(np.abs(top)))
    steps = rng.choice([0.0, 0.0, 1.0, 2.0, 3.0], (rows, n))
    far = rng.random((rows, n)) < 0.5
    x = np.where(far, top - rng.uniform(20.0, 40.0, (rows, n)), top - steps * ulp)
    return Case("near ties", dtype, oracle.round_to(x, dtype))


def _huge(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    # Logits across the whole range of the dtype, with tied maxima: differences overflow to -inf
    # (whose exp is the right 0) and nothing may become NaN.
    big = _HUGE[dtype]
    x = oracle.round_to(big * rng.uniform(-1.0, 1.0, (rows, n)), dtype)
    ties = rng.integers(0, n, (rows, 3))
    x[np.arange(rows)[:, None], ties] = np.max(x, axis=-1, keepdims=True)
    return Case("huge", dtype, x)


def _long_rows(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    # 1e5 entries by default. The values are representable in every dtype (8 significant bits,
    # no float16 subnormals), so the one costly exact result serves all four dtypes.
    x = oracle.round_to(oracle.round_to(rng.normal(0.0, 3.0, (rows, n)), "bfloat16"), "float16")
    x = np.where(np.abs(x) < 2.0**-14, 0.0, x)
    return Case("long rows", dtype, x)


def _temperatures(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    x = oracle.round_to(rng.normal(0.0, 10.0, (rows, n)), dtype)
    t = oracle.round_to(np.exp(rng.uniform(math.log(0.05), math.log(20.0), (rows, 1))), dtype)
    return Case("temperatures", dtype, x, temperature=t)


def _masks(dtype: str, rng: np.random.Generator, rows: int, n: int) -> Case:
    # Excluded entries hold the largest logits, which would dominate if they leaked; the first
    # row includes a single entry (log_softmax exactly 0 there).
    x = rng.normal(0.0, 3.0, (rows, n))
    where = rng.random((rows, n)) < 0.7
    where[0] = False
    where[0, rng.integers(0, n)] = True
    x = np.where(where, x, x + 50.0)
    return Case("masks", dtype, oracle.round_to(x, dtype), where=where)


#: Family name -> (function, default rows, default row length).
FAMILIES: dict[str, tuple[Family, int, int]] = {
    "normal(0,1)": (_normal(1.0), 8, 300),
    "normal(0,30)": (_normal(30.0), 8, 300),
    "dominant": (_dominant, 8, 300),
    "near ties": (_near_ties, 8, 300),
    "huge": (_huge, 8, 300),
    "long rows": (_long_rows, 1, 100_000),
    "temperatures": (_temperatures, 8, 300),
    "masks": (_masks, 8, 300),
}


def make_case(
    family: str, dtype: str, rng: np.random.Generator, rows: int | None = None, n: int | None = None
) -> Case:
    """The input of `family` in `dtype` (rows and row length default to the family's own)."""
    fn, default_rows, default_n = FAMILIES[family]
    return fn(dtype, rng, rows or default_rows, n or default_n)


# -- exact values and errors ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Exact:
    """Exact values as double-double: ``hi`` the float64 rounding, ``lo`` what it misses."""

    hi: np.ndarray
    lo: np.ndarray


def exact_values(case: Case, name: str) -> Exact:
    """The oracle's `name` (softmax, log_softmax or logsumexp) of `case`, as `Exact`."""
    values = getattr(oracle, name)(case.x, -1, case.temperature, case.where)
    hi = oracle.to_float(values)
    lo = np.zeros(hi.shape)
    with mpmath.workdps(oracle.DEFAULT_DIGITS):
        for idx in zip(*np.nonzero(np.isfinite(hi)), strict=True):
            lo[idx] = float(values[idx] - mpmath.mpf(hi[idx]))
    return Exact(hi, lo)


def vectorised_ulp_error(
    result: Any, exact: Exact, dtype: str, scale: Any = None, flushed: bool = False
) -> np.ndarray:
    """``|result - exact| / max(|exact|, scale, tiny) / eps`` from the double-double `exact`.

    `bounds.scaled_ulp_error`'s measure, vectorised in float64 over the `Exact` record (a long row
    costs no mpmath operation per entry), with one difference: an exact value beyond the range of
    `dtype` counts as the infinity it rounds to. Matching infinities and NaN against NaN are 0; any
    other mismatch of non-finite values is inf. With
    `flushed` (a backend that flushes subnormal results to zero, see `flushes_subnormals`), a 0
    where the exact value is below the smallest normal number counts as exact.
    """
    r = np.asarray(result, dtype=np.float64)
    eps, tiny = oracle.EPS[dtype], oracle.TINY[dtype]
    # Halfway past the largest finite number (float64's own overflow already made hi infinite).
    overflow = math.ldexp(1.0 - eps / 4.0, _EMAX[dtype] + 1) if dtype != "float64" else math.inf
    target = np.where(np.abs(exact.hi) >= overflow, np.copysign(np.inf, exact.hi), exact.hi)
    magnitude = np.maximum(np.abs(exact.hi), tiny)
    if scale is not None:
        magnitude = np.maximum(magnitude, scale)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs((r - exact.hi) - exact.lo) / magnitude / eps
        special = ~np.isfinite(target) | ~np.isfinite(r)
        same = (r == target) | (np.isnan(r) & np.isnan(target))
    err = np.where(special, np.where(same, 0.0, np.inf), err)
    if flushed:
        err = np.where((r == 0) & (np.abs(exact.hi) < tiny), 0.0, err)
    return err


_FLUSHES: dict[tuple[str, str], bool] = {}


def flushes_subnormals(variant: Variant, dtype: str) -> bool:
    """Whether `variant` flushes subnormal results of exp to zero when computing for `dtype`.

    XLA on CPU does (for float32, hence for float16 and bfloat16 computed in float32): there a
    softmax entry below the smallest normal number is 0, for xpsoftmax and ``jax.nn`` alike.
    """
    compute = "float64" if dtype == "float64" else "float32"
    key = (variant.id, compute)
    if key not in _FLUSHES:
        # exp(-745 + 5) and exp(-88.5) are subnormal in float64 and float32.
        probe = np.array([-740.0 if compute == "float64" else -88.5])
        out = variant.backend.xp.exp(variant.asarray(probe, dtype=compute))
        _FLUSHES[key] = bool(variant.to_numpy(out)[0] == 0)
    return _FLUSHES[key]


def max_error(
    result: Any, exact: Exact, dtype: str, scale: Any = None, flushed: bool = False
) -> float:
    """The largest of `vectorised_ulp_error` (0 for an empty result)."""
    err = vectorised_ulp_error(result, exact, dtype, scale, flushed)
    return float(err.max()) if err.size else 0.0


# -- running xpsoftmax and the peers ------------------------------------------------------------------

_COMPILED: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Callable[..., Any]] = {}


def _functions(names: tuple[str, ...], arrays: tuple[str, ...]) -> Callable[..., tuple[Any, ...]]:
    """One function computing the xpsoftmax functions `names`, given x and the `arrays` options."""
    import xpsoftmax

    def fn(x: Any, *values: Any) -> tuple[Any, ...]:
        kwargs = dict(zip(arrays, values, strict=True))
        return tuple(getattr(xpsoftmax, name)(x, **kwargs) for name in names)

    return fn


def run_xpsoftmax(
    variant: Variant, case: Case, names: tuple[str, ...] = PEER_FUNCTIONS
) -> dict[str, np.ndarray]:
    """The xpsoftmax functions `names` of `case` on `variant`, as float64 NumPy arrays.

    Compiled variants compile one function returning them all, once per signature.
    """
    arrays = {}
    if isinstance(case.temperature, np.ndarray):
        arrays["temperature"] = variant.asarray(case.temperature, dtype=case.dtype)
    if case.where is not None:
        arrays["where"] = variant.asarray(case.where)
    key = (variant.id, names, tuple(arrays))
    if key not in _COMPILED:
        _COMPILED[key] = variant.wrap(_functions(names, tuple(arrays)))
    outs = _COMPILED[key](variant.asarray(case.x, dtype=case.dtype), *arrays.values())
    return {
        name: variant.to_numpy(out).astype(np.float64)
        for name, out in zip(names, outs, strict=True)
    }


def _peer_input(case: Case) -> np.ndarray:
    """What a user hands a peer: ``x / T`` rounded to the dtype, -inf at excluded entries."""
    with np.errstate(over="ignore"):
        y = oracle.round_to(case.x / np.asarray(case.temperature, dtype=np.float64), case.dtype)
    if isinstance(case.temperature, float) and case.temperature == 1.0:
        y = case.x
    return y if case.where is None else np.where(case.where, y, -np.inf)


def run_peer(peer: str, case: Case) -> dict[str, np.ndarray] | None:
    """The peer's softmax, log_softmax and logsumexp of `case`; None where it lacks the dtype.

    The division by T happens in the dtype, as the peer's user would write it (with a temperature
    array, ``x / T`` is rounded once to the dtype before the peer sees it).
    """
    backend = get(PEERS[peer])
    if not backend.is_installed() or case.dtype not in backend.dtypes():
        return None
    y = backend.asarray(_peer_input(case), dtype=case.dtype)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # SciPy's float16 paths may warn on overflow to inf
        outs = (
            backend.ref_softmax(y, -1),
            backend.ref_log_softmax(y, -1),
            backend.ref_logsumexp(y, -1),
        )
    results = {
        name: backend.to_numpy(out).astype(np.float64)
        for name, out in zip(PEER_FUNCTIONS, outs, strict=True)
    }
    # The smooth maximum at temperature T is T * logsumexp(x / T), the product rounded to the dtype.
    t = (
        np.asarray(case.temperature, dtype=np.float64)[..., 0]
        if np.ndim(case.temperature)
        else case.temperature
    )
    results["logsumexp"] = oracle.round_to(results["logsumexp"] * t, case.dtype)
    return results


def measure(
    results: dict[str, np.ndarray], exact: dict[str, Exact], dtype: str, flushed: bool = False
) -> dict[str, float]:
    """Max error in eps of each result (plain relative error: no conditioning scale)."""
    return {name: max_error(results[name], exact[name], dtype, flushed=flushed) for name in results}


def exact_all(case: Case, names: Iterable[str] = PEER_FUNCTIONS) -> dict[str, Exact]:
    """`exact_values` of each function in `names`."""
    return {name: exact_values(case, name) for name in names}
