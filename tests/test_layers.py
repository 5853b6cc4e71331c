"""The layers of src/xpsoftmax import downward only.

From the bottom: the platform (`_platform`: namespaces and capabilities), the validator
(`_validation`), the kernels (`_kernels`: the shared math), the derivative rules and their
attachment (`_derivatives`), and the public topic modules (`_softmax`, `_jacobian`, `_loss`,
`_calibration`, `_temperature`, with the package's `__init__`). A module may import its own layer
and the layers below it, never one above: the tree stays readable from the bottom up.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import xpsoftmax

SOURCE = pathlib.Path(xpsoftmax.__file__).parent
LAYERS = ("_platform", "_validation", "_kernels", "_derivatives")
TOPICS = len(LAYERS)  # every other module is a public topic module, the top layer
MODULES = sorted(SOURCE.rglob("*.py"))


def layer_of(module: str) -> int:
    """The layer of a module of the package, named relative to it (``_kernels.normalise``)."""
    head = module.partition(".")[0]
    return LAYERS.index(head) if head in LAYERS else TOPICS


def package_imports(location: tuple[str, ...], text: str) -> list[tuple[str, int]]:
    """(module of the package, line) for each import of the package's own in `text`, the
    source of the module at `location` (its path's parts relative to the package)."""
    package = list(location[:-1])
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                names = [[*base, *node.module.split(".")]]
            else:
                names = [[*base, alias.name] for alias in node.names]
            found.extend((".".join(name), node.lineno) for name in names)
        elif node.module and node.module.startswith("xpsoftmax."):
            found.append((node.module.partition(".")[2], node.lineno))
    return found


def upward_imports(location: tuple[str, ...], text: str) -> list[str]:
    own = layer_of(".".join(location).removesuffix(".py"))
    return [
        f"line {line}: imports {module} (layer {layer_of(module)}, above {own})"
        for module, line in package_imports(location, text)
        if layer_of(module) > own
    ]


def test_every_layer_exists() -> None:
    heads = {p.relative_to(SOURCE).parts[0].removesuffix(".py") for p in MODULES}
    assert set(LAYERS) <= heads


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_run_downward(path: pathlib.Path) -> None:
    assert not upward_imports(path.relative_to(SOURCE).parts, path.read_text())


@pytest.mark.parametrize(
    ("location", "text", "caught"),
    [
        (("_kernels", "normalise.py"), "from .._derivatives.attach import apply\n", True),
        (("_platform", "tracing.py"), "from .. import _softmax\n", True),
        (("_validation.py",), "from ._kernels.arithmetic import scale\n", True),
        (("_kernels", "weighted.py"), "from xpsoftmax._loss import cross_entropy\n", True),
        (("_derivatives", "rule.py"), "from .._kernels.normalise import normalise\n", False),
        (("_softmax.py",), "from ._derivatives.attach import apply\n", False),
    ],
)
def test_the_check_tells_upward_from_downward(
    location: tuple[str, ...], text: str, caught: bool
) -> None:
    assert bool(upward_imports(location, text)) == caught


def test_modules_stay_small() -> None:
    """No module of src/ over 400 lines (the style guide's limit)."""
    lines = {str(p.relative_to(SOURCE)): len(p.read_text().splitlines()) for p in MODULES}
    assert not {name: n for name, n in lines.items() if n > 400}


def test_every_package_ships() -> None:
    """pyproject lists the packages by hand (backends/ is mapped into xpsoftmax): each folder
    with an ``__init__.py``, in src/ and backends/, must be in the list, or the wheel lacks it."""
    import tomllib

    root = SOURCE.parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {
        ".".join(("xpsoftmax", *init.parent.relative_to(SOURCE).parts))
        for init in SOURCE.rglob("__init__.py")
    }
    for name, folder in config["package-dir"].items():
        if name:
            base = root / folder
            on_disk |= {
                ".".join((name, *init.parent.relative_to(base).parts))
                for init in base.rglob("__init__.py")
                # (a folder mapped on its own, below this one, is its own package)
                if not any(
                    base in (root / other).parents and (root / other) in init.parents
                    for other in config["package-dir"].values()
                    if other
                )
            }
    assert on_disk == listed
