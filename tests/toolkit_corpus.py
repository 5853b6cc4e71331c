"""A corpus for `xpsoftmax.testing.check_function`, and the verdict expected of each case.

Two kinds of functions, each checked on every CPU variant (array-api-strict's second device
included):

* ``planted.*``: our own array-API functions, most with one planted bug of a kind the toolkit
  looks for, some correct (results that are bool, integer, tuples or Python scalars; values at
  the edges of float32; a float64 log_sigmoid differentiated);
* ``scipy.*``, ``xpx.*`` and ``sklearn.*``: functions of public libraries the test suite
  installs, written by others, checked as their authors could check them.

`EXPECTED` says, per case, which checks fail on which variant; every other (variant, check) must
pass. tests/test_toolkit_corpus.py runs the corpus and fails on any crash (an exception other
than the AssertionError of verdicts), any false alarm and any missed finding. SciPy and
scikit-learn take array-API input only when ``SCIPY_ARRAY_API=1`` is set before SciPy is first
imported, so the public cases run in a process of their own: ``python tests/toolkit_corpus.py
public`` (with that variable) prints their outcomes as JSON. docs/scripts/testing_toolkit_report.py
writes some of the verdicts into the documentation.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import array_api_compat
import array_api_extra as xpx
import numpy as np
from scipy import special

from xpsoftmax import testing

#: The variants every case runs on: the same list on every machine with the test dependencies.
VARIANTS = (
    "numpy",
    "array_api_strict",
    "dask",
    "jax",
    "jax.jit",
    "torch",
    "torch.compile",
    "array_api_strict:device1",
)


def runnable_variants() -> tuple[str, ...]:
    """`VARIANTS`, less array_api_strict:device1 where this array-api-strict does not offer it
    (beside NumPy 1, at the lower bounds: the variant's unavailable reason says why)."""
    offered = {v.name for v in testing.variants()}
    return tuple(v for v in VARIANTS if v != "array_api_strict:device1" or v in offered)


RNG = np.random.default_rng(31)
X32 = RNG.standard_normal((3, 4)).astype(np.float32)
X64 = RNG.standard_normal((3, 4))
POSITIVE32 = (np.abs(X32) + 0.5).astype(np.float32)
#: exp overflows float32 at 100 and underflows past its smallest normal number at -100.
EDGES32 = np.array([[-100.0, -1.0, 0.0], [0.5, 1.0, 100.0]], dtype=np.float32)
EDGES32_INF = np.array([[1.0, np.inf, -2.0], [0.5, -np.inf, 3.0]], dtype=np.float32)
WITH_ZERO32 = np.array([[0.0, 0.5, 1.0], [2.0, 0.25, 3.0]], dtype=np.float32)
#: One entry whose square is 1e30 beside entries near 1.
WITH_LARGE64 = np.array([[1e15, 0.5, -1.5], [2.0, -0.25, 3.0]])


def _xp(*arrays: Any) -> Any:
    return array_api_compat.array_namespace(*arrays)


# -- planted bugs --------------------------------------------------------------------------------


def scale_in_place(x: Any) -> Any:
    xp = _xp(x)
    x *= 2.0  # bug: scales the caller's array
    return xp.exp(x)


def widened(x: Any) -> Any:
    xp = _xp(x)
    return xp.multiply(x, xp.asarray(2.0, dtype=xp.float64))  # bug: float64 promotes float32


def shifted_by_python_float(x: Any) -> Any:
    xp = _xp(x)
    return xp.exp(x - float(xp.max(x)))  # bug: float() needs the value now


def x_log_x(x: Any) -> Any:
    xp = _xp(x)
    # bug: where() picks 0 at x == 0, but log(0) has been computed, and warned about, already
    return xp.where(x > 0, x * xp.log(x), 0.0)


def sum_but_first(x: Any) -> Any:
    xp = _xp(x)
    return xp.sum(x[..., 1:], axis=-1)  # bug: the slice leaves out the first entry


def safe_abs(x: Any) -> Any:
    xp = _xp(x)
    return xp.sqrt(x * x + 1e-6)  # bug: off by about 5e-7 near 1, exact for the large entry


def quantised_exp(x: Any) -> Any:
    xp = _xp(x)
    fixed = xp.astype(xp.round(x * 2.0**20), xp.int64)  # bug: an integer cuts the gradient
    return xp.exp(xp.astype(fixed, x.dtype) / 2.0**20)


def tanh_through_numpy(x: Any) -> Any:
    xp = _xp(x)
    return xp.asarray(np.tanh(np.asarray(x)))  # bug: np.asarray needs the data on the host


def row_sizes(x: Any) -> Any:
    xp = _xp(x)
    # bug: an array made without device= lands on the default device, not the input's
    return xp.full(x.shape[:-1], float(x.shape[-1]), dtype=x.dtype)


def logsumexp_masking_the_max(x: Any) -> Any:
    xp = _xp(x)
    top = xp.max(x, axis=-1, keepdims=True)
    # bug for PyTorch autograd: writes into the output of max, which its backward needs
    top = xpx.at(top)[~xp.isfinite(top)].set(0.0)
    return xp.squeeze(top, axis=-1) + xp.log(xp.sum(xp.exp(x - top), axis=-1))


def exp_quiet_on_numpy_only(x: Any) -> Any:
    xp = _xp(x)
    if array_api_compat.is_numpy_namespace(xp):
        with np.errstate(over="ignore"):
            return xp.exp(x)
    return xp.exp(x)  # bug: the overflow warns on the other NumPy-backed libraries


# -- correct functions ---------------------------------------------------------------------------


def log_sigmoid(x: Any) -> Any:
    xp = _xp(x)
    return -xp.logaddexp(xp.zeros_like(x), -x)


def finite_scaled_down(x: Any) -> Any:
    xp = _xp(x)
    # Subnormal results, and float32's largest finite value where x is infinite.
    return xp.where(xp.isfinite(x), x * 2.0**-140, xp.finfo(x.dtype).max)


def moments(x: Any) -> Any:
    xp = _xp(x)
    return xp.mean(x, axis=-1), xp.var(x, axis=-1)


def is_positive(x: Any) -> Any:
    return x > 0


def argmax_last(x: Any) -> Any:
    return _xp(x).argmax(x, axis=-1)


def total(x: Any) -> float:
    return float(_xp(x).sum(x))


def tempered_exp(x: Any, temperature: float = 1.0) -> Any:
    xp = _xp(x)
    if temperature <= 0:  # a Python branch on a Python number: static under jax.jit
        raise ValueError("temperature must be positive")
    return xp.exp(x / temperature)


def clipped_if_negative(x: Any) -> Any:
    xp = _xp(x)
    if bool(xp.any(x < 0)):  # needs the data: one Dask compute, a graph break under torch
        return xp.maximum(x, xp.zeros_like(x))
    return x


def softmax_rows(x: Any) -> Any:
    xp = _xp(x)
    exps = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return exps / xp.sum(exps, axis=-1, keepdims=True)


def _np_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


# -- the cases -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One function, its inputs and reference, check_function's options, and the verdicts."""

    name: str
    #: The function, or "module:attribute" of a public one (imported when the case runs).
    fn: Callable[..., Any] | str
    args: tuple[Any, ...]
    reference: Callable[..., Any]
    #: variant name -> the checks that fail there, space-separated; unnamed variants pass.
    expected: dict[str, str]
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def public(self) -> bool:
        return isinstance(self.fn, str)

    def function(self) -> Callable[..., Any]:
        if not isinstance(self.fn, str):
            return self.fn
        module, _, attribute = self.fn.partition(":")
        found: Callable[..., Any] = importlib.import_module(module)
        for part in attribute.split("."):
            found = getattr(found, part)
        return found

    def verdicts(self) -> dict[str, set[str]]:
        return {v: set(checks.split()) for v, checks in self.expected.items()}


def _on(variants: str, checks: str) -> dict[str, str]:
    return dict.fromkeys(variants.split(), checks)


ALL = " ".join(VARIANTS)
ALL_BUT_DEVICE1 = " ".join(VARIANTS[:-1])
NUMPY_BACKED = "numpy array_api_strict dask array_api_strict:device1"
MUTABLE = "numpy array_api_strict torch torch.compile array_api_strict:device1"
AUTODIFF = "jax jax.jit torch torch.compile"
#: NumPy 1 keeps float32 beside a 0-d float64 array (value-based casting, before NEP 50), so
#: `widened` widens nothing on plain NumPy there.
NUMPY_2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0"
WIDENING = ALL_BUT_DEVICE1 if NUMPY_2 else " ".join(VARIANTS[1:-1])


# fmt: off
PLANTED = [
    Case("planted.scale_in_place", scale_in_place, (X32,), lambda x: np.exp(2 * x),
         _on(MUTABLE, "mutation")),
    # The float64 constant is made on the default device: on device1 it meets the input there.
    Case("planted.widened", widened, (X32,), lambda x: 2 * x,
         {**_on(WIDENING, "types"), "array_api_strict:device1": "devices"}),
    Case("planted.shifted_by_python_float", shifted_by_python_float, (X32,),
         lambda x: np.exp(x - x.max()), _on("dask jax.jit", "laziness")),
    Case("planted.x_log_x", x_log_x, (WITH_ZERO32,), lambda x: special.xlogy(x, x),
         _on(NUMPY_BACKED, "warnings")),
    Case("planted.sum_but_first", sum_but_first, (X32,), lambda x: x.sum(-1),
         _on(ALL, "values")),
    Case("planted.safe_abs_beside_a_large_entry", safe_abs, (WITH_LARGE64,), np.abs,
         _on(ALL, "values")),
    Case("planted.quantised_exp", quantised_exp, (X32,), np.exp, _on(AUTODIFF, "gradients"),
         options={"grad": True}),
    Case("planted.tanh_through_numpy", tanh_through_numpy, (X32,), np.tanh,
         {"dask": "laziness", "jax.jit": "laziness", "array_api_strict:device1": "devices"}),
    Case("planted.row_sizes", row_sizes, (X32,),
         lambda x: np.full(x.shape[:-1], float(x.shape[-1])),
         {"array_api_strict:device1": "devices"}),
    Case("planted.logsumexp_masking_the_max", logsumexp_masking_the_max, (X64,),
         lambda x: np.log(np.exp(x).sum(-1)), _on("torch torch.compile", "gradients"),
         options={"grad": True}),
    Case("planted.exp_quiet_on_numpy_only", exp_quiet_on_numpy_only, (EDGES32,), np.exp,
         _on("array_api_strict dask array_api_strict:device1", "warnings")),
    # Correct functions: no finding anywhere.
    Case("planted.log_sigmoid_float64", log_sigmoid, (X64,), lambda x: -np.logaddexp(0, -x),
         {}, options={"grad": True}),
    # torch.compile breaks the graph at xp.finfo: fullgraph=False lets it.
    Case("planted.finite_scaled_down_at_float32_edges", finite_scaled_down, (EDGES32_INF,),
         lambda x: np.where(np.isfinite(x), x * 2.0**-140, np.finfo(x.dtype).max), {},
         options={"fullgraph": False}),
    Case("planted.moments_tuple", moments, (X64,), lambda x: (x.mean(-1), x.var(-1)), {},
         options={"grad": True}),
    Case("planted.is_positive_bool", is_positive, (X32,), lambda x: x > 0, {}),
    Case("planted.argmax_integer", argmax_last, (X32,), lambda x: x.argmax(-1), {}),
    # A Python float cannot come out of a lazy graph or a jitted function.
    Case("planted.total_python_float", total, (X32,), lambda x: float(x.sum()),
         _on("dask jax.jit", "laziness")),
    Case("planted.tempered_exp_static", tempered_exp, (X32,),
         lambda x, temperature: np.exp(x / temperature), {}, kwargs={"temperature": 2.0}),
    Case("planted.tempered_exp_traced", tempered_exp, (X32,),
         lambda x, temperature: np.exp(x / temperature), {"jax.jit": "laziness"},
         kwargs={"temperature": 2.0}, options={"static_argnames": ()}),
    Case("planted.clipped_if_negative_within_budgets", clipped_if_negative, (X32,),
         lambda x: np.maximum(x, 0.0), {"jax.jit": "laziness"},
         options={"allow_dask_compute": 1, "fullgraph": False}),
    Case("planted.softmax_in_several_chunks", softmax_rows, (X32,), _np_softmax, {},
         options={"dask_chunks": "several", "grad": True}),
]

PUBLIC = [
    Case("scipy.special.logsumexp", "scipy.special:logsumexp", (X64,),
         lambda x, axis: np.log(np.exp(x).sum(axis)), {"torch.compile": "laziness"},
         kwargs={"axis": -1}, options={"grad": True}),
    Case("scipy.special.logsumexp_return_sign", "scipy.special:logsumexp", (X32,),
         lambda x, axis, return_sign: (np.log(np.exp(x).sum(axis)), np.ones(x.shape[0])),
         {"torch.compile": "laziness"}, kwargs={"axis": -1, "return_sign": True}),
    Case("scipy.special.softmax", "scipy.special:softmax", (X64,), _np_softmax, {},
         kwargs={"axis": -1}, options={"grad": True}),
    Case("scipy.special.log_softmax", "scipy.special:log_softmax", (X64,),
         lambda x, axis: x - np.log(np.exp(x).sum(axis, keepdims=True)),
         {"torch": "gradients", "torch.compile": "laziness"}, kwargs={"axis": -1},
         options={"grad": True}),
    Case("scipy.special.entr", "scipy.special:entr", (POSITIVE32,), lambda x: -x * np.log(x),
         {"array_api_strict:device1": "devices"}),
    Case("scipy.special.xlogy", "scipy.special:xlogy", (X32, POSITIVE32),
         lambda x, y: x * np.log(y), {}),
    Case("scipy.stats.zscore", "scipy.stats:zscore", (X32,),
         lambda x, axis: (x - x.mean(axis, keepdims=True)) / x.std(axis, keepdims=True),
         {"torch.compile": "laziness"}, kwargs={"axis": -1}),
    Case("scipy.stats.entropy", "scipy.stats:entropy", (POSITIVE32,),
         lambda p, axis: special.entr(p / p.sum(axis, keepdims=True)).sum(axis),
         {"torch.compile": "laziness", "array_api_strict:device1": "devices"},
         kwargs={"axis": -1}),
    Case("scipy.stats.gmean", "scipy.stats:gmean", (POSITIVE32,),
         lambda x, axis: np.exp(np.log(x).mean(axis)), {"torch.compile": "laziness"},
         kwargs={"axis": -1}),
    Case("xpx.isclose", "array_api_extra:isclose", (X32, X32 + np.float32(1e-7)), np.isclose, {}),
    Case("xpx.nunique", "array_api_extra:nunique", (np.array([3, 1, 2, 2, 3]),),
         lambda x: np.unique(x).size, {"torch.compile": "laziness"}),
    Case("xpx.nan_to_num", "array_api_extra:nan_to_num",
         (np.array([np.nan, np.inf, -np.inf, 1.5], dtype=np.float32),), np.nan_to_num, {}),
    Case("xpx.cov", "array_api_extra:cov", (X32,), np.cov,
         {**_on(NUMPY_BACKED, "types"), "torch.compile": "laziness"}),
    Case("xpx.sinc", "array_api_extra:sinc", (X64,), np.sinc, {}, options={"grad": True}),
    Case("xpx.one_hot", "array_api_extra:one_hot", (np.array([0, 2, 1]), 3),
         lambda x, n: np.eye(n)[x], {}),
    Case("xpx.kron", "array_api_extra:kron", (X32[:2, :2], X32[1:, 2:]), np.kron, {}),
    Case("sklearn.preprocessing.normalize", "sklearn.preprocessing:normalize", (X64,),
         lambda x: x / np.sqrt((x * x).sum(1, keepdims=True)),
         {"dask": "laziness", "jax": "call", "jax.jit": "call", "torch": "gradients",
          "torch.compile": "laziness"}, options={"grad": True}),
    Case("sklearn.preprocessing.minmax_scale", "sklearn.preprocessing:minmax_scale", (X64,),
         lambda x: (x - x.min(0)) / (x.max(0) - x.min(0)),
         {"array_api_strict": "call warnings", "dask": "laziness", "jax": "call",
          "jax.jit": "call", "torch": "call", "torch.compile": "call",
          "array_api_strict:device1": "call warnings"}),
    Case("sklearn.utils.extmath.softmax", "sklearn.utils.extmath:softmax", (X64,), _np_softmax,
         {"torch": "gradients", "torch.compile": "laziness"}, options={"grad": True}),
    # Dynamo does not trace scikit-learn's files: fullgraph=False runs them eagerly.
    Case("sklearn.utils.extmath.row_norms", "sklearn.utils.extmath:row_norms", (X64,),
         lambda x: np.sqrt((x * x).sum(1)), {}, options={"grad": True, "fullgraph": False}),
]
# fmt: on

CASES = {case.name: case for case in PLANTED + PUBLIC}


def enable_public_libraries() -> None:
    """Turn on scikit-learn's array-API dispatch (SciPy reads SCIPY_ARRAY_API by itself)."""
    import sklearn

    sklearn.set_config(array_api_dispatch=True)


def parse(message: str) -> dict[str, set[str]]:
    """{variant: checks} of check_function's AssertionError message (lines after the first that
    are not continuations)."""
    found: dict[str, set[str]] = {}
    for line in message.splitlines()[1:]:
        if line.startswith(" "):
            continue
        variant, check, _ = line.split(": ", 2)
        found.setdefault(variant, set()).add(check)
    return found


def run(case: Case) -> dict[str, Any]:
    """The outcome of one case: its verdicts by variant, the message, or the crash."""
    try:
        testing.check_function(
            case.function(),
            *case.args,
            reference=case.reference,
            variants=runnable_variants(),
            **case.options,
            **case.kwargs,
        )
    except AssertionError as err:
        return {"verdicts": parse(str(err)), "message": str(err), "crash": None}
    except Exception:  # noqa: BLE001 (a crash is what the corpus exists to catch)
        return {"verdicts": {}, "message": "", "crash": traceback.format_exc()}
    return {"verdicts": {}, "message": "", "crash": None}


def main(which: str) -> None:
    cases = PUBLIC if which == "public" else PLANTED if which == "planted" else [CASES[which]]
    if any(case.public for case in cases):
        enable_public_libraries()
    outcomes = {}
    for case in cases:
        outcome = run(case)
        outcome["verdicts"] = {v: sorted(c) for v, c in outcome["verdicts"].items()}
        outcomes[case.name] = outcome
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "public")
