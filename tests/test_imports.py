"""What importing the library costs: no array library is imported, and src/ never names one.

The promise (array-api-compat tests the same of itself): ``import xpsoftmax`` and
``import xpsoftmax.backends`` load no framework, not even NumPy; nor do the packages of the test
harness and the command line, whose modules import what they need. The library may name NumPy in
one place only: the lazy import inside ``_platform.namespaces.as_array`` that turns Python
sequences into arrays.
"""

from __future__ import annotations

import ast
import importlib
import json
import pathlib
import subprocess
import sys

import pytest

import xpsoftmax

FRAMEWORKS = frozenset(
    {
        "numpy",
        "jax",
        "jaxlib",
        "torch",
        "dask",
        "distributed",
        "cupy",
        "array_api_strict",
        "scipy",
        "mpmath",
        "ml_dtypes",
        "sparse",
        "ndonnx",
        "tensorflow",
    }
)
SOURCE = pathlib.Path(xpsoftmax.__file__).parent


@pytest.mark.parametrize(
    "module", ["xpsoftmax", "xpsoftmax.backends", "xpsoftmax.testing", "xpsoftmax.backends.cli"]
)
def test_import_loads_no_array_library(module: str) -> None:
    code = (
        f"import sys, json, {module}\n"
        "print(json.dumps(sorted({name.partition('.')[0] for name in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(done.stdout))
    assert not loaded & FRAMEWORKS, f"import {module} loaded {sorted(loaded & FRAMEWORKS)}"


def test_the_harness_is_imported_under_one_name() -> None:
    """backends/testing ships as xpsoftmax.testing only; an editable install must not offer a second
    copy of its modules (and their caches) as xpsoftmax.backends.testing."""
    with pytest.raises(ImportError):
        importlib.import_module("xpsoftmax.backends.testing")


def _imports(tree: ast.AST) -> list[tuple[str, ast.AST, list[str]]]:
    """(top-level module name, node, names of the enclosing functions) of every import."""
    found: list[tuple[str, ast.AST, list[str]]] = []

    def visit(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [*scope, child.name]
            if isinstance(child, ast.Import):
                found.extend((a.name.partition(".")[0], child, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                found.append((child.module.partition(".")[0], child, inner))
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute | ast.Name)
                and getattr(child.func, "attr", getattr(child.func, "id", None))
                in ("import_module", "__import__")
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                found.append((child.args[0].value.partition(".")[0], child, inner))
            visit(child, inner)

    visit(tree, [])
    return found


def test_source_never_imports_a_framework_by_name() -> None:
    files = sorted(SOURCE.rglob("*.py"))
    assert files
    offending = []
    numpy_imports = []
    for path in files:
        for module, node, scope in _imports(ast.parse(path.read_text(), filename=str(path))):
            if module not in FRAMEWORKS:
                continue
            where = f"{path.relative_to(SOURCE)}:{node.lineno} in {'.'.join(scope) or '<module>'}"
            if module == "numpy" and path.name == "namespaces.py" and scope == ["as_array"]:
                numpy_imports.append(where)
            else:
                offending.append(f"{where} imports {module}")
    assert not offending, offending
    assert len(numpy_imports) <= 1, numpy_imports
