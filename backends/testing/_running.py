"""Running the function on a variant as `check_function`'s options ask, and what happens meanwhile.

* `Policy`: the options that change how the function is run (``torch.compile``'s fullgraph,
  the arguments `jax.jit` treats as static, Dask's chunks and compute budget);
* `prepared`: the call itself, compiled afresh on a compiled variant;
* `recorded`: the warnings raised meanwhile, every one of them (also one already shown once in
  this process), less the frameworks' own (`xpsoftmax.backends.Backend.internal_warnings`);
* `counted_computes`: on Dask, each time the graph is computed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from xpsoftmax.backends import BACKENDS, Bound, InternalWarning, is_traced

if TYPE_CHECKING:
    from xpsoftmax.backends import Variant

    from ._inputs import Inputs, Key

_SCALARS = (int, float, complex)


@dataclasses.dataclass(frozen=True)
class Policy:
    """How the function is run: see `check_function`'s parameters of the same names."""

    fullgraph: bool = True
    allow_dask_compute: bool | int = False
    static_argnames: frozenset[str] | None = None
    dask_chunks: Any = "auto"

    @property
    def compute_budget(self) -> float:
        """How many times the function may compute a Dask graph during one call."""
        if self.allow_dask_compute is True:
            return math.inf
        return float(self.allow_dask_compute)

    def traced(self, v: Variant, inputs: Inputs) -> Callable[[Key, Any], bool]:
        """Which arguments a compiled call passes traced (the rest are closed over): the
        framework's arrays; under `jax.jit` with `static_argnames` given, Python numbers too
        unless named there."""
        static = self.static_argnames
        if static is None or v.backend.name != "jax":
            return lambda _, value: is_traced(value)

        def traced(key: Key, value: Any) -> bool:
            if is_traced(value):
                return True
            number = isinstance(value, _SCALARS) and not isinstance(value, bool)
            return number and inputs.name(key) not in static

        return traced


def prepared(
    v: Variant,
    fn: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    policy: Policy,
    inputs: Inputs,
) -> Callable[[], Any]:
    """``fn(*args, **kwargs)`` on `v` in its mode, ready to call: compiled here, anew, on a
    compiled variant (never a compiled function kept from an earlier check, whose caches would
    carry history)."""
    if not v.compiled:
        return lambda: fn(*args, **kwargs)
    bound, traced_args = Bound.of(fn, args, kwargs, traced=policy.traced(v, inputs))
    compiled = v.wrap(bound.with_constants, fullgraph=policy.fullgraph)
    return lambda: compiled(*traced_args)


def forgiven_warnings() -> tuple[InternalWarning, ...]:
    """The warnings `check_function` forgives: those the frameworks raise about their own
    workings, whatever the function does, each with its reason.

    A warning is forgiven when its category, the start of its message and the package whose
    file raised it all match one of these; the same text warned by the function's own code is
    a finding.

    Examples
    --------
    >>> from xpsoftmax import testing
    >>> notice = testing.forgiven_warnings()[1]
    >>> notice.package, notice.category.__name__, notice.message[:23]
    ('torch', 'UserWarning', 'Dynamo detected a call ')
    """
    return tuple(entry for backend in BACKENDS.values() for entry in backend.internal_warnings)


@contextlib.contextmanager
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    """The warnings raised in the context, less the frameworks' own."""
    kept: list[warnings.WarningMessage] = []
    with warnings.catch_warnings(record=True) as caught:
        # "always": a warning already shown once in this process is still a finding.
        warnings.simplefilter("always")
        try:
            yield kept
        finally:
            forgiven = forgiven_warnings()
            kept.extend(w for w in caught if not any(e.matches(w) for e in forgiven))


@contextlib.contextmanager
def counted_computes(v: Variant) -> Iterator[list[object]]:
    """On Dask, a scheduler that notes each compute (and then computes, synchronously, so that
    the function runs to the end and its other faults show too); elsewhere nothing."""
    computes: list[object] = []
    if v.backend.name != "dask":
        yield computes
        return
    import dask
    import dask.local

    def counting_scheduler(graph: Any, keys: Any, **options: Any) -> Any:
        computes.append(keys)
        return dask.local.get_sync(graph, keys, **options)

    with dask.config.set(scheduler=counting_scheduler):
        yield computes


def unique(found: Iterable[str]) -> list[str]:
    """`found` without repeats, in order."""
    return list(dict.fromkeys(found))
