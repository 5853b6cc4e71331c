"""Print pip constraints that pin every lower bound pyproject.toml states, for the oldest set.

    python .ci/lower_bounds.py jax torch dask strict test cli --except torch > lower.txt
    pip install -c lower.txt -e ".[jax,torch,dask,strict,test,cli]"

Reads the runtime dependencies and the extras named (an extra that names xpsoftmax's own
extras is expanded), and turns each ``>=`` bound into ``==`` (``numpy>=1.26`` becomes
``numpy==1.26``, which pip reads as 1.26.0). A package bounded in several extras is pinned at
the highest of its bounds, the oldest version that all of them admit. Packages named after
``--except`` are left out (CI pins the PyTorch it can install itself). The bounds live in
pyproject.toml alone, so the CI step that installs the oldest set cannot drift from them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy, in the lint extra, depends on tomli before Python 3.11
    import tomli as tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(project: dict, extras: list[str]) -> list[Requirement]:
    """The runtime requirements and those of `extras`, self-references expanded."""
    name = canonicalize_name(project["name"])
    optional = project.get("optional-dependencies", {})
    found, pending, seen = [Requirement(r) for r in project["dependencies"]], list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r}")
        seen.add(extra)
        for line in optional[extra]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == name:
                pending.extend(requirement.extras)
            else:
                found.append(requirement)
    return found


def lower_bounds(found: list[Requirement], leave_out: set[str]) -> dict[str, Version]:
    """The highest ``>=`` bound of each package, by canonical name."""
    bounds: dict[str, Version] = {}
    for requirement in found:
        name = canonicalize_name(requirement.name)
        if name in leave_out:
            continue
        for spec in requirement.specifier:
            if spec.operator == ">=":
                version = Version(spec.version)
                bounds[name] = max(bounds.get(name, version), version)
    return bounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("extras", nargs="*", help="extras of pyproject.toml to include")
    parser.add_argument("--except", dest="leave_out", nargs="*", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    leave_out = {canonicalize_name(name) for name in args.leave_out}
    bounds = lower_bounds(requirements(project, args.extras), leave_out)
    sys.stdout.write("".join(f"{name}=={version}\n" for name, version in sorted(bounds.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
