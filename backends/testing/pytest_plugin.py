"""A pytest plugin: the ``xp_variant`` fixture, one test per variant of `xpsoftmax.testing.variants`.

Opt in from a ``conftest.py`` (or a test module)::

    pytest_plugins = ["xpsoftmax.testing.pytest_plugin"]

and take ``xp_variant`` as an argument: the test runs once per variant, with ids such as
``test_entropy[numpy]`` and ``test_entropy[jax.jit]``. The list is the same on every machine; a
variant that cannot run here (a framework not installed, no GPU) is skipped with its reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from xpsoftmax.backends import Variant

from ._matrix import variants

__all__ = ["variant_params", "xp_variant"]


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
    array-api-strict, Dask, JAX, ``jax.jit``, PyTorch, ``torch.compile`` and the GPU ones."""
    chosen: Variant = request.param
    return chosen
