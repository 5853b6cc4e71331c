"""The lower bounds pyproject.toml states, read with `packaging` (pip's own parser), for tests
whose expectation depends on them.

The library reads the same bounds from its installed metadata with a small parser of its own;
these helpers are the tests' independent reading. Below the bound an extra sets for a
capability (``transposed-maps``: JAX's lax.map transposing tangents and residuals together),
the expected result is the library's ImportError naming the package and both versions.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def lowest_bounds(lines: list[str]) -> dict[str, Version]:
    """The lowest ``>=`` bound of each package among requirement `lines`."""
    bounds: dict[str, Version] = {}
    for requirement in map(Requirement, lines):
        name = canonicalize_name(requirement.name)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                bounds[name] = min(bounds.get(name, Version(spec.version)), Version(spec.version))
    return bounds


def declared_bounds(extra: str | None = None) -> dict[str, Version]:
    """The bounds of pyproject.toml: those of one extra, or (None) the lowest over all."""
    import tomllib  # (Python 3.11 on, as CI runs)

    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    if extra is not None:
        return lowest_bounds(extras[extra])
    return lowest_bounds([*project["dependencies"], *(line for e in extras.values() for line in e)])


def newer_needed(extra: str, package: str) -> str | None:
    """A pattern of the library's error when the installed `package` is below the bound that
    `extra` sets for it; None when it is not."""
    needed = declared_bounds(extra)[package]
    installed = importlib.metadata.version(package)
    if Version(installed) >= needed:
        return None
    return re.escape(f"needs {package} >= {needed}, the version needed, but {package} {installed}")
