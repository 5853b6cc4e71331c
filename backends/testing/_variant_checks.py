"""Every check of `check_function` on one variant, each run whatever the others found.

Whatever goes wrong, in the function or in checking it (the call, bringing the result to the
host, the mutation check, the gradient, a compile), becomes a finding of this variant; nothing
raises out of here. Each check's verdict depends only on this call: a compiled variant starts
from a compiler that has forgotten every earlier function (`Backend.reset_compiled`), and every
warning is recorded, also one already shown once in this process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._findings import describe, describe_warning
from ._gradients import Exact, gradient_failure
from ._results import (
    DEFAULT_RTOL,
    compare,
    expected_precision,
    flatten,
    leaf_problems,
    precision_of,
    to_host,
)
from ._running import Policy, counted_computes, prepared, recorded, unique

if TYPE_CHECKING:
    from xpsoftmax.backends import Variant

    from ._inputs import Inputs


@dataclasses.dataclass(frozen=True)
class Case:
    """One `check_function` call: the function, its inputs, the reference and the options."""

    fn: Callable[..., Any]
    inputs: Inputs
    expected: Any
    native_expected: Any
    policy: Policy
    rtol: float | None
    atol: float | None
    grad: bool
    #: The reference's gradients, and the weights `w` of ``sum(w * fn)`` (with grad=True).
    exact_gradients: Exact
    weights: dict[str, Any]
    result_dtype: Any


class _Findings(dict[str, str]):
    """check -> what happened, for the checks not skipped; several findings of one check join."""

    def __init__(self, skipped: set[str]) -> None:
        super().__init__()
        self.skipped = skipped

    def add(self, check: str, detail: str) -> None:
        if check in self.skipped or not detail:
            return
        self[check] = f"{self[check]}; {detail}" if check in self else detail


def check_variant(v: Variant, case: Case, skipped: set[str]) -> dict[str, str]:
    """The findings of every check on `v` not in `skipped`, by check."""
    found = _Findings(skipped)
    if v.compiled:
        v.backend.reset_compiled()
    try:
        args, kwargs = case.inputs.on(v, dask_chunks=case.policy.dask_chunks)
    except Exception as err:  # noqa: BLE001 (an input this variant cannot hold is a finding)
        found.add("call", f"the inputs could not be made: {describe(err)}")
        return found
    result, failed = None, None
    with v.backend.quiet(), recorded() as caught, counted_computes(v) as computes:
        try:
            result = prepared(v, case.fn, args, kwargs, case.policy, case.inputs)()
        except Exception as err:  # noqa: BLE001 (whatever fn raises is a finding, reported)
            failed = err
    if failed is not None:
        found.add(*_classify(v, case, failed))
    if len(computes) > case.policy.compute_budget:
        found.add(
            "laziness",
            f"fn computed a Dask array {len(computes)} time(s) during the call, more than "
            f"allow_dask_compute={case.policy.allow_dask_compute} (float(), int(), bool(), "
            ".item(), np.asarray() or an `if` on an array computes it)",
        )
    if failed is None:
        with recorded() as caught_computing:
            _check_result(v, case, result, found)
        caught += caught_computing
    found.add("warnings", "; ".join(unique(describe_warning(w) for w in caught)))
    try:
        changed = case.inputs.changed(v, args, kwargs)
    except Exception as err:  # noqa: BLE001 (inputs that cannot be read back are a finding)
        found.add("mutation", f"the inputs could not be read back after the call: {describe(err)}")
    else:
        if changed:
            plural = "s" if len(changed) > 1 else ""
            found.add("mutation", f"fn modified its argument{plural} {', '.join(changed)} in place")
    if case.grad and v.backend.has_autodiff and failed is None and "gradients" not in skipped:
        found.add("gradients", _gradients(v, case, result, found))
    return found


def _classify(v: Variant, case: Case, err: Exception) -> tuple[str, str]:
    """The check a failed call fails: laziness where the same call runs eagerly, devices where
    it runs on the library's default device, else call."""
    what = describe(err)
    if v.compiled and _runs(v, case, eager=True):
        return "laziness", f"fn does not trace under {v.name}: {what}"
    if v.device != v.backend.default_device and _runs(v, case, eager=False):
        return (
            "devices",
            f"fn fails on {v.device} but runs on {v.backend.default_device}: {what}",
        )
    return "call", f"fn raised {what}"


def _runs(v: Variant, case: Case, *, eager: bool) -> bool:
    """Whether the function runs on `v`'s library uncompiled (`eager`), or on its default
    device."""
    probe = dataclasses.replace(v, compiled=False)
    if not eager:
        probe = dataclasses.replace(probe, device=v.backend.default_device)
    try:
        args, kwargs = case.inputs.on(probe, dask_chunks=case.policy.dask_chunks)
        with v.backend.quiet(), recorded():
            case.fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 (fails there too: not a tracing or device problem)
        return False
    return True


def _check_result(v: Variant, case: Case, result: Any, found: _Findings) -> None:
    """The types, devices and values checks of a result."""
    got_leaves, want_leaves = flatten(result), flatten(case.expected)
    native = dict(flatten(case.native_expected)) if case.native_expected is not None else {}
    got_paths, want_paths = [p for p, _ in got_leaves], [p for p, _ in want_leaves]
    if got_paths != want_paths:
        found.add(
            "types",
            f"result has the parts {got_paths or ['(none)']}, the reference's "
            f"{want_paths or ['(none)']}",
        )
        return
    input_dtype = case.inputs.inexact_dtype()
    for (path, got), (_, want) in zip(got_leaves, want_leaves, strict=True):
        precision = expected_precision(case.result_dtype, input_dtype, v, native.get(path))
        try:
            problems, devices = leaf_problems(v, path, got, want, precision)
        except Exception as err:  # noqa: BLE001 (a result the checks cannot read is a finding)
            found.add("types", f"result{path} could not be inspected: {describe(err)}")
            continue
        found.add("types", "; ".join(problems))
        found.add("devices", "; ".join(devices))
        try:
            host = to_host(v, got)
        except Exception as err:  # noqa: BLE001 (a result that cannot reach the host is a finding)
            found.add("types", f"result{path} could not be brought to the host: {describe(err)}")
            continue
        if want is None or host is None:
            continue
        owed = precision[0] if precision else precision_of(input_dtype or "float64")
        try:
            _check_values(path, host, want, owed, case, found)
        except Exception as err:  # noqa: BLE001 (values that cannot be compared are a finding)
            found.add("values", f"result{path} could not be compared: {describe(err)}")


def _check_values(
    path: str, host: Any, want: Any, precision: str, case: Case, found: _Findings
) -> None:
    import numpy as np

    expected = np.asarray(want)
    if host.shape != expected.shape:
        found.add("types", f"result{path} has shape {host.shape}, the reference's {expected.shape}")
        return
    rtol = DEFAULT_RTOL.get(precision, 1e-12) if case.rtol is None else case.rtol
    mismatch = compare(host, expected, precision=precision, rtol=rtol, atol=case.atol)
    found.add("values", mismatch and (f"result{path}: " if path else "") + mismatch)


def _gradients(v: Variant, case: Case, result: Any, found: _Findings) -> str:
    def call(args: list[Any], kwargs: dict[str, Any]) -> Any:
        return prepared(v, case.fn, args, kwargs, case.policy, case.inputs)()

    with v.backend.quiet(), recorded() as caught:
        try:
            failure = gradient_failure(
                v, call, case.inputs, case.exact_gradients, case.weights, result, rtol=case.rtol
            )
        except Exception as err:  # noqa: BLE001 (autodiff that fails is a finding)
            failure = f"differentiating fn raised {describe(err)}"
    warned = unique(describe_warning(w) for w in caught)
    found.add("warnings", "; ".join(f"while differentiating: {w}" for w in warned))
    return failure
