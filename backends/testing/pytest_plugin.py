"""A pytest plugin: the ``xp_variant`` fixture, one test per variant of `xpsoftmax.testing.variants`.

Opt in from a ``conftest.py`` (or a test module)::

    pytest_plugins = ["xpsoftmax.testing.pytest_plugin"]

and take ``xp_variant`` as an argument: the test runs once per variant, with ids such as
``test_entropy[numpy]`` and ``test_entropy[jax.jit]``. The list is the same on every machine; a
variant that cannot run here (a framework not installed, no GPU) is skipped with its reason.

Two markers, as SciPy's ``skip_xp_backends`` and ``xfail_xp_backends``, name variants whose
``xp_variant`` tests skip or are expected to fail, each with its reason::

    @pytest.mark.skip_variants("dask", reason="needs the shape of a boolean mask")
    @pytest.mark.xfail_variants("torch.compile", "jax.jit", reason="a Python branch on data")
    def test_entropy(xp_variant): ...

An expected failure is strict by default: a test that passes there fails, so that a fix is
noticed (``strict=False`` lets it pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from xpsoftmax.backends import Variant

from ._matrix import variants

__all__ = ["variant_params", "xp_variant"]

_MARKERS = {
    "skip_variants": "skip_variants(*names, reason): skip the xp_variant tests of these "
    "variants (xpsoftmax.testing), giving the reason",
    "xfail_variants": "xfail_variants(*names, reason, strict=True): the xp_variant tests of "
    "these variants (xpsoftmax.testing) are expected to fail, for the reason",
}


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers, so that ``--strict-markers`` knows them."""
    for line in _MARKERS.values():
        config.addinivalue_line("markers", line)


def variant_params(
    selected: Iterable[Variant] | None = None, *, id: Callable[[Variant], str] | None = None
) -> list[Any]:
    """``pytest.param`` per variant (all of them by default, runnable here or not), with the
    variant's name as id (or ``id(variant)``) and a skip mark, with the reason, where it cannot
    run. For ``@pytest.mark.parametrize`` and fixture ``params``."""
    chosen = variants(include_missing=True) if selected is None else selected
    params = []
    for v in chosen:
        reason = v.unavailable_reason()
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(v, id=id(v) if id else v.name, marks=marks))
    return params


@pytest.fixture(params=variant_params())
def xp_variant(request: pytest.FixtureRequest) -> Variant:
    """A variant (`xpsoftmax.backends.Variant`): ``asarray``, ``call`` and ``to_numpy`` on NumPy,
    array-api-strict (on its CPU and on its second device), Dask, JAX, ``jax.jit``, PyTorch,
    ``torch.compile`` and the GPU ones; the ``skip_variants`` and ``xfail_variants`` markers of
    the test apply."""
    chosen: Variant = request.param
    for marker in request.node.iter_markers("skip_variants"):
        reason = _reason_if_named(marker, chosen)
        if reason:
            pytest.skip(reason)
    for marker in request.node.iter_markers("xfail_variants"):
        reason = _reason_if_named(marker, chosen)
        if reason:
            strict = marker.kwargs.get("strict", True)
            request.applymarker(pytest.mark.xfail(reason=reason, strict=strict))
    return chosen


def _reason_if_named(marker: pytest.Mark, v: Variant) -> str:
    """The marker's reason if it names `v`, else ""; a marker without a reason, or naming a
    variant that does not exist, is refused."""
    reason = marker.kwargs.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError(f"@pytest.mark.{marker.name} needs reason=, a str saying why")
    every = variants(include_missing=True)
    known = {w.name for w in every} | {w.id for w in every}
    unknown = [name for name in marker.args if name not in known]
    if unknown:
        raise ValueError(
            f"@pytest.mark.{marker.name}: unknown variant(s) {unknown}; known: "
            f"{[w.name for w in every]}"
        )
    return reason if v.name in marker.args or v.id in marker.args else ""
