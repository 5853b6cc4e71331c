"""Installed versions: an array library older than the oldest version xpsoftmax is tested with.

xpsoftmax's package metadata (pyproject.toml's dependencies and extras) states a lower bound
for each library it runs on, the oldest version its tests pass with. pip enforces the bounds
when it installs us, but an environment can change afterwards. A library below its bound then
fails somewhere deep inside, with an AttributeError about a missing attribute (a JAX whose
traced arrays lack ``__array_namespace__``, a Dask without ``inf``). `require_supported` turns
that into an ImportError naming the package, the version installed and the version needed, the
first time an array of that library is met. `require_extra` does the same for a capability
that reached a library later than the rest of xpsoftmax needs, whose bound an extra of its own
states. Both versions are read from the installed packages' metadata, so no library is named
here and the bounds have one source.
"""

from __future__ import annotations

import functools
import importlib.metadata
import re

__all__ = ["require_extra", "require_supported"]


def require_supported(module_name: str) -> None:
    """Raise ImportError if the package whose top-level module is `module_name` (or a
    submodule of it) is older than the lower bound xpsoftmax declares for it.

    Packages we declare no bound for, and installs without our metadata (a source tree on
    ``sys.path``), pass. Answered once per package and kept.
    """
    message = _too_old(module_name.partition(".")[0])
    if message is not None:
        raise ImportError(message)


def require_extra(extra: str, what: str, namespace_name: str) -> None:
    """Raise ImportError if the package of the namespace named so is older than the bound
    that our extra `extra` sets for it: `what` needs a capability that reached that package
    later than the rest of the library needs (pyproject.toml says which, beside the extra).
    """
    message = _too_old(namespace_name.partition(".")[0], extra)
    if message is not None:
        raise ImportError(f"{what}: {message} (xpsoftmax[{extra}])")


@functools.cache
def _too_old(top_level: str, extra: str | None = None) -> str | None:
    package = _canonical(top_level)
    needed = _lower_bounds(extra).get(package)
    if needed is None:
        return None
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if _release(installed) >= _release(needed):
        return None
    tested = "the oldest version it is tested with" if extra is None else "the version needed"
    return (
        f"xpsoftmax needs {package} >= {needed}, {tested}, but {package} {installed} is "
        f"installed: upgrade it (pip install '{package}>={needed}')"
    )


@functools.cache
def _lower_bounds(extra: str | None = None) -> dict[str, str]:
    """The ``>=`` bound of each package in our metadata, by canonical name: in `extra` alone,
    or (None) the lowest over all requirements, the oldest version any part of us admits."""
    try:
        requirements = importlib.metadata.requires("xpsoftmax") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    bounds: dict[str, str] = {}
    for requirement in requirements:
        found = _REQUIREMENT.match(requirement)
        if found is None:
            continue
        name, specifiers, marker = found.group(1, 2, 3)
        in_extra = _EXTRA.search(marker or "")
        if extra is not None and (in_extra is None or in_extra.group(1) != extra):
            continue
        package = _canonical(name)
        for version in _AT_LEAST.findall(specifiers):
            if package not in bounds or _release(version) < _release(bounds[package]):
                bounds[package] = version
    return bounds


# "name[extras] specifiers ; marker" (PEP 508, no URLs in ours).
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)(?:;(.*))?")
_AT_LEAST = re.compile(r">=\s*([0-9][0-9A-Za-z.!+-]*)")
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")


def _canonical(name: str) -> str:
    """A package name as PEP 503 compares them (``array_api_strict``: ``array-api-strict``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _release(version: str) -> tuple[int, ...]:
    """The release numbers of a version, trailing zeros dropped (``2.13.0+cpu``: (2, 13)).

    A pre-release counts as its release, which is lenient by one step: enough to tell a
    library from one a year older, without a version parser among our dependencies.
    """
    found = re.match(r"\s*(?:\d+!)?(\d+(?:\.\d+)*)", version)
    numbers = [int(part) for part in found.group(1).split(".")] if found else []
    while numbers and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)
