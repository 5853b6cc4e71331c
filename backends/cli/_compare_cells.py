"""One cell of ``xpsoftmax compare``: a function on one variant, dtype and shape, measured three ways.

For each cell the command measures

- the error of xpsoftmax against the exact (mpmath) oracle, in units of the dtype's machine epsilon,
  and whether every entry lies within its bound (spec: Accuracy; `xpsoftmax.testing.bounds`,
  shared with the test suite);
- the same error for the framework's own implementation (SciPy where the framework has none), and the
  largest difference between the two, in the same units;
- the time of xpsoftmax over the time of the framework's own, sampled alternately (ours, theirs, ours,
  ...) so that both see the same machine load, and keeping the best sample of each.

The oracle works on the exact values the framework holds (the input after rounding to the dtype), so a
float16 cell measures the function, not the rounding of its input. Only the first `oracle_rows` slices
are checked against the oracle, which costs a few microseconds per exponential at 100 digits; the
framework comparison and the timing use the whole array.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from xpsoftmax.testing import accuracy, bounds, oracle

import xpsoftmax

if TYPE_CHECKING:
    from .. import Variant

#: Slices per cell checked against the mpmath oracle.
ORACLE_ROWS = 4
#: The oracle's Jacobians cost n * n exact entries per slice: fewer slices are checked beyond this.
ORACLE_JACOBIAN_ENTRIES = 2**14


def oracle_rows(function: str, n: int) -> int:
    """How many slices of length `n` the oracle checks for `function`."""
    if function.endswith("jacobian"):
        return max(1, min(ORACLE_ROWS, ORACLE_JACOBIAN_ENTRIES // max(n * n, 1)))
    return ORACLE_ROWS


_JACOBIANS = {"softmax_jacobian": "softmax", "log_softmax_jacobian": "log_softmax"}
_PRODUCTS = {
    "softmax_jvp": ("softmax", "jvp"),
    "softmax_vjp": ("softmax", "vjp"),
    "log_softmax_jvp": ("log_softmax", "jvp"),
    "log_softmax_vjp": ("log_softmax", "vjp"),
}


@dataclasses.dataclass
class Cell:
    """The figures of one backend x device x dtype x function x shape cell (see the module docstring).

    Errors are in units of the dtype's epsilon; ``None`` where a figure does not exist (no framework
    function to compare with, or the cell could not run, in which case `note` says why).
    """

    variant: str
    backend: str
    device: str
    dtype: str
    function: str
    shape: tuple[int, int]
    error: float | None = None
    bound: float | None = None
    within: bool | None = None
    their_error: float | None = None
    difference: float | None = None
    time_ours_s: float | None = None
    time_theirs_s: float | None = None
    reference: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Time of xpsoftmax over the framework's own: below 1 means xpsoftmax is faster."""
        if self.time_ours_s is None or not self.time_theirs_s:
            return None
        return self.time_ours_s / self.time_theirs_s

    @property
    def status(self) -> str:
        """`ok` within the bounds (spec: Accuracy), `FAIL` beyond, `ERROR` where ours raised."""
        if self.within is None:
            return "ERROR"
        return "ok" if self.within else "FAIL"

    @property
    def label(self) -> str:
        """How the table and the failure list name this cell."""
        rows, n = self.shape
        return f"{self.variant}/{self.dtype}/{self.function}/{rows}x{n}"

    def as_json(self) -> dict[str, Any]:
        """Every figure, with the derived ratio and status, as JSON-ready values."""
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape)
        data.update(ratio=self.ratio, status=self.status, label=self.label)
        return data


def make_inputs(shape: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Float64 host inputs for one shape: logits ``x``, tangents ``v``, cotangents ``g``, ``target``.

    Row 0 has one dominant logit and the rest 20 to 60 below it, where log_softmax is near 0 and
    ``1 - s`` near 0: the entries that separate careful from naive implementations. The other rows
    are normal with standard deviation 4.
    """
    rows, n = shape
    rng = np.random.default_rng(seed)
    x = 4.0 * rng.standard_normal(shape)
    if rows and n:
        x[0] = -rng.uniform(20.0, 60.0, n)
        x[0, 0] = 0.0
    return {
        "x": x,
        "v": rng.standard_normal(shape),
        "g": rng.standard_normal(shape),
        "target": rng.integers(0, max(n, 1), size=rows),
    }


def calls(
    function: str, variant: Variant
) -> tuple[Callable[..., Any], Callable[..., Any] | None, str]:
    """(ours, theirs, description of theirs) for `function` on `variant`, both taking the same arrays.

    `theirs` is None where the framework has nothing to compare with (a Jacobian without autodiff).
    """
    backend = variant.backend
    if function in ("softmax", "log_softmax", "logsumexp"):
        ref = getattr(backend, f"ref_{function}")
        return getattr(xpsoftmax, function), lambda x: ref(x, -1), f"{backend.name} {function}"
    if function == "cross_entropy":

        def ours_ce(x: Any, target: Any) -> Any:
            return xpsoftmax.cross_entropy(x, target, reduction="none")

        def theirs_ce(x: Any, target: Any) -> Any:
            return backend.ref_cross_entropy(x, target, reduction="none")

        return ours_ce, theirs_ce, f"{backend.name} cross_entropy"
    base = _JACOBIANS.get(function) or _PRODUCTS[function][0]
    ours = getattr(xpsoftmax, function)
    if not backend.has_autodiff:
        return ours, None, "no autodiff"
    ref_base = getattr(backend, f"ref_{base}")

    def their_jacobian(x: Any) -> Any:
        return backend.ref_jacobian(lambda row: ref_base(row, -1), x)

    if function in _JACOBIANS:
        return ours, their_jacobian, f"{backend.name} autodiff Jacobian"
    if _PRODUCTS[function][1] == "jvp":
        return ours, lambda x, v: (their_jacobian(x) @ v[..., None])[..., 0], "autodiff J @ v"
    return ours, lambda x, g: (g[..., None, :] @ their_jacobian(x))[..., 0, :], "autodiff g @ J"


def exact(function: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The oracle's exact values (mpmath objects) of `function` at `inputs`, along the last axis."""
    x = inputs["x"]
    if function == "cross_entropy":
        losses: np.ndarray = oracle.cross_entropy(x, inputs["target"], axis=-1, reduction="none")
        return losses
    compute: Callable[..., np.ndarray] = getattr(oracle, function)
    if function in _PRODUCTS:
        return compute(x, inputs["g" if function.endswith("vjp") else "v"], axis=-1)
    return compute(x, axis=-1)


@dataclasses.dataclass
class OracleCheck:
    """The exact values of one cell and what `xpsoftmax.testing.bounds` allows at each entry."""

    function: str
    dtype: str
    truth: np.ndarray
    scale: np.ndarray | None
    allowed: np.ndarray
    flushed: bool = False

    @classmethod
    def build(
        cls, function: str, dtype: str, held: dict[str, np.ndarray], flushed: bool = False
    ) -> OracleCheck:
        truth = exact(function, held)
        x = held["x"]
        u = held.get("g" if function.endswith("vjp") else "v")
        scale = bounds.error_scale(function, x, u, axis=-1, exact=truth)
        allowed = np.broadcast_to(bounds.allowed_error(function, dtype, x, axis=-1), truth.shape)
        return cls(function, dtype, truth, scale, allowed, flushed)

    def errors(self, result: np.ndarray) -> np.ndarray:
        """Error of each entry of `result` (the checked rows), in eps of the dtype."""
        return bounds.scaled_ulp_error(result, self.truth, self.dtype, self.scale, self.flushed)

    def record(self, cell: Cell, result: np.ndarray) -> None:
        """Set the cell's largest error, the bound at that entry, and whether all are within."""
        err = self.errors(result)
        if not err.size:
            cell.error, cell.bound, cell.within = 0.0, 0.0, True
            return
        worst = np.unravel_index(np.argmax(err), err.shape)
        cell.error, cell.bound = float(err[worst]), float(self.allowed[worst])
        excess = err - self.allowed
        cell.within = bool(np.all(excess <= 0))
        if not cell.within:
            at = np.unravel_index(np.argmax(excess), err.shape)
            cell.note = (
                f"error {err[at]:.3g} eps > bound {self.allowed[at]:.3g} at {tuple(map(int, at))}"
            )


def _arguments(
    function: str, variant: Variant, dtype: str, host: dict[str, np.ndarray]
) -> list[Any]:
    """The framework arrays `function` takes, in order."""
    args = [variant.asarray(host["x"], dtype=dtype)]
    if function == "cross_entropy":
        args.append(variant.asarray(host["target"]))
    elif function in _PRODUCTS:
        args.append(variant.asarray(host["g" if function.endswith("vjp") else "v"], dtype=dtype))
    return args


def _max_error(result: np.ndarray, truth: np.ndarray, scale: np.ndarray) -> float:
    """Largest ``|result - truth| / scale``; a NaN or infinity where the truth differs counts as inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        same = (result == truth) | (np.isnan(result) & np.isnan(truth))
        error = np.where(same, 0.0, np.abs(result - truth) / scale)
    error = np.where(np.isnan(error), np.inf, error)
    return float(np.max(error)) if error.size else 0.0


def measure(
    variant: Variant,
    dtype: str,
    function: str,
    shape: tuple[int, int],
    *,
    repeats: int = 5,
    sample_s: float = 0.002,
    ours: Callable[..., Any] | None = None,
) -> Cell:
    """Measure one cell; `ours` replaces xpsoftmax's function (how the tests build a failing cell).

    Any exception raised by xpsoftmax, when first called or while timed, makes the cell fail with
    the exception's first line as its note; one raised by the framework's own function is a note.
    """
    rows, n = shape
    cell = Cell(variant.id, variant.backend.name, variant.device, dtype, function, (rows, n))
    _fresh_compile_cache(variant)
    our_fn, their_eager, cell.reference = calls(function, variant)
    our_fn = variant.wrap(ours or our_fn)
    args = _arguments(function, variant, dtype, make_inputs(shape))
    # The oracle sees the values the framework holds, after rounding to `dtype`.
    checked = oracle_rows(function, shape[1])
    held = _held_rows(variant, function, args, checked)
    check = OracleCheck.build(function, dtype, held, accuracy.flushes_subnormals(variant, dtype))
    try:
        result = _host(variant, our_fn, args)
        check.record(cell, result[:checked])
        theirs, their_fn = None, None
        if their_eager is not None:
            theirs, their_fn = _their_result(cell, variant, their_eager, args)
        if theirs is not None:
            cell.their_error = float(np.max(check.errors(theirs[:checked]), initial=0.0))
            scale = _pairwise_scale(result, theirs, dtype)
            cell.difference = _max_error(result, theirs, scale)
        with variant.timing(math.prod(shape)):
            times = _best_times(
                [f for f in (our_fn, their_fn) if f], args, variant, repeats, sample_s
            )
    except Exception as err:  # noqa: BLE001 -- a crash of ours is a failed cell, with its message
        cell.error, cell.within = None, None
        cell.note = f"xpsoftmax raised {type(err).__name__}: {_first_line(err)}"
        return cell
    cell.time_ours_s = times[0]
    cell.time_theirs_s = times[1] if len(times) > 1 else None
    return cell


def _host(variant: Variant, fn: Callable[..., Any], args: list[Any]) -> np.ndarray:
    """`fn(*args)`, waited for and copied to the host as float64."""
    return variant.to_numpy(variant.synchronize(fn(*args))).astype(np.float64)


def _held_rows(
    variant: Variant, function: str, args: list[Any], rows: int
) -> dict[str, np.ndarray]:
    """The first `rows` slices of the framework's arrays, as the oracle's float64 input."""
    held = {"x": variant.to_numpy(args[0])}
    if function == "cross_entropy":
        held["target"] = variant.to_numpy(args[1])
    elif function in _PRODUCTS:
        held["g" if function.endswith("vjp") else "v"] = variant.to_numpy(args[1])
    return {
        key: value[:rows] if key == "target" else value[:rows].astype(np.float64)
        for key, value in held.items()
    }


def _their_result(
    cell: Cell,
    variant: Variant,
    their_eager: Callable[..., Any],
    args: list[Any],
) -> tuple[np.ndarray | None, Callable[..., Any] | None]:
    """(the framework's result, the function to time against), noting on `cell` why either is None.

    A reference that cannot be compiled (it reads values) is compared in its eager form but not
    timed: compiled against eager would say nothing about either.
    """
    their_fn = variant.wrap(their_eager)
    try:
        return _host(variant, their_fn, args), their_fn
    except Exception as err:  # noqa: BLE001 -- the framework's own failing is a note, not ours
        cell.note = f"{cell.reference} raised {type(err).__name__}: {_first_line(err)}"
    if not variant.compiled:
        return None, None
    try:
        theirs = _host(variant, their_eager, args)
    except Exception:  # noqa: BLE001 -- already noted above
        return None, None
    cell.note += "; compared with the eager reference, not timed against it"
    return theirs, None


def _fresh_compile_cache(variant: Variant) -> None:
    """Forget torch.compile's earlier graphs before a torch.compile cell.

    TorchDynamo keys its cache on the code object: the reference wrappers share one, and a cell per
    dtype and size would soon pass its recompilation limit, which under ``fullgraph=True`` is an error.
    Each cell then compiles afresh, as a user's first call would.
    """
    if variant.compiled and variant.backend.name == "torch":
        import torch

        torch._dynamo.reset()


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _pairwise_scale(ours: np.ndarray, theirs: np.ndarray, dtype: str) -> np.ndarray:
    """One eps at each entry of two results that both approximate one value: of the larger one."""
    with np.errstate(invalid="ignore"):
        larger = np.fmax(np.abs(ours), np.abs(theirs))
    magnitude: np.ndarray = np.maximum(np.nan_to_num(larger, posinf=0.0), oracle.TINY[dtype])
    return oracle.EPS[dtype] * magnitude


def _best_times(
    fns: list[Callable[..., Any]], args: list[Any], variant: Variant, repeats: int, sample_s: float
) -> list[float]:
    """Best seconds per call of each of `fns`, sampled alternately, each sample ~`sample_s` long."""
    loops = []
    for fn in fns:  # the first calls above compiled and warmed up; this one sizes the loops
        start = time.perf_counter()
        variant.synchronize(fn(*args))
        loops.append(max(1, math.ceil(sample_s / max(time.perf_counter() - start, 1e-7))))
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(loops[i]):
                # Every call waits for its result: a lazy (Dask) or asynchronous (JAX, CUDA) call
                # would otherwise only be queued.
                variant.synchronize(fn(*args))
            best[i] = min(best[i], (time.perf_counter() - start) / loops[i])
    return best
