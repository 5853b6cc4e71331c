"""Run mypy over src/ and backends/ under the names they ship as.

setuptools ships backends/ as ``xpsoftmax.backends`` and backends/testing as ``xpsoftmax.testing``
([tool.setuptools.package-dir] in pyproject.toml), and the editable install maps them with an import
hook that mypy cannot follow. Plain ``mypy`` names a file after its folders (``backends.testing.oracle``),
so the imports between the rooms would not resolve. This runs mypy with the configuration in
pyproject.toml ([tool.mypy], its ``files`` included), naming each file as the package-dir mapping does.

Usage: ``python .ci/typecheck.py`` from the repository root (extra arguments go to mypy).
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy itself depends on tomli before Python 3.11
    import tomli as tomllib

from mypy import build
from mypy.errors import CompileError
from mypy.main import process_options
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent


def package_dirs() -> list[tuple[Path, str]]:
    """(folder, package name) of each package-dir entry, the deepest folders first."""
    with open(ROOT / "pyproject.toml", "rb") as file:
        mapping = tomllib.load(file)["tool"]["setuptools"]["package-dir"]
    pairs = [(ROOT / folder, name) for name, folder in mapping.items()]
    return sorted(pairs, key=lambda pair: len(pair[0].parts), reverse=True)


def shipped_name(path: Path, dirs: list[tuple[Path, str]]) -> str:
    """The module name under which setuptools ships the file at `path`."""
    for folder, package in dirs:
        if path.is_relative_to(folder):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join(filter(None, [package, *parts]))
    raise SystemExit(f"{path} is outside every [tool.setuptools.package-dir] folder")


def main(argv: list[str]) -> int:
    sources, options = process_options(argv)
    dirs = package_dirs()
    renamed = [
        BuildSource(s.path, shipped_name(Path(s.path).resolve(), dirs), s.text)
        for s in sources
        if s.path is not None
    ]
    try:
        messages = build.build(renamed, options).errors
    except CompileError as error:
        messages = error.messages
    for message in messages:
        print(message)
    files = f"{len(renamed)} source files"
    if any(": error:" in m for m in messages):
        errors = sum(": error:" in m for m in messages)
        print(f"Found {errors} error{'s' * (errors != 1)} in {files}")
        return 1
    print(f"Success: no issues found in {files}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
