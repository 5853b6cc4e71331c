"""The documentation: it builds with no warning, every example runs, every public function is in it.

The build runs Sphinx in a subprocess exactly as CI does (``-W --keep-going``: any warning fails).
The examples are the ``>>>`` blocks of every page and of the docstrings the API reference shows,
run with the standard doctest module; the pages' outputs are values one can check by hand or
comparisons with the frameworks' own functions.
"""

from __future__ import annotations

import doctest
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpsoftmax

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(DOCS.glob("*.rst"))
#: One hand-written page per public function (and one for ``xpsoftmax.backends``), indexed by api.rst.
API_PAGES = sorted((DOCS / "api").glob("*.rst"))
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_the_pages_exist() -> None:
    names = {page.stem for page in PAGES}
    assert {
        "index",
        "getting_started",
        "spec",
        "frameworks",
        "calibration",
        "library_authors",
        "regressions",
        "accuracy",
        "performance",
        "scale",
        "api",
    } <= names


@pytest.mark.skipif(
    importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("numpydoc") is None,
    reason="building the docs needs sphinx and numpydoc (the [docs] extra)",
)
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    # The command of docs/Makefile and CI, with the doctrees out of the source tree.
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    proc = subprocess.run(
        [*command, "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "html" / "api.html").exists()


@pytest.mark.parametrize(
    "page",
    PAGES + API_PAGES,
    ids=[page.stem for page in PAGES] + [f"api/{page.stem}" for page in API_PAGES],
)
def test_examples_run(page: Path) -> None:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(page.read_text(encoding="utf-8"), {}, page.stem, str(page), 0)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    failures: list[str] = []
    with np.printoptions():  # pages set the print precision they show; keep it to the page
        runner.run(test, out=failures.append)
    assert not failures, "".join(failures)
    if page.stem in ("spec", "frameworks", "library_authors", "getting_started"):
        assert test.examples, f"{page.name} should show runnable examples"


def _documented_objects() -> dict[str, object]:
    """What the API pages render with their docstring examples: the public functions and backends."""
    from xpsoftmax.backends.cli import parser
    from xpsoftmax.testing import bounds, oracle

    from xpsoftmax import backends

    objects: dict[str, object] = {name: getattr(xpsoftmax, name) for name in xpsoftmax.__all__}
    objects.update(
        {
            "backends": backends,
            "testing.oracle": oracle,
            "testing.bounds": bounds,
            "backends.cli.parser.main": parser.main,
            "backends.Backend": backends.Backend,
            "backends.Variant": backends.Variant,
        }
    )
    return objects


@pytest.mark.parametrize("name", sorted(_documented_objects()))
def test_docstring_examples_run(name: str) -> None:
    """The examples the API reference shows, from the docstrings, run too."""
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    failures: list[str] = []
    with np.printoptions():
        for test in finder.find(_documented_objects()[name], name, globs={}):
            runner.run(test, out=failures.append)
    assert not failures, "".join(failures)


def test_every_public_function_has_an_api_page_linked_to_the_spec() -> None:
    spec = (DOCS / "spec.rst").read_text(encoding="utf-8")
    labels = set(re.findall(r"^\.\. _(spec[\w-]*):$", spec, flags=re.MULTILINE))
    for name in xpsoftmax.__all__:
        page = (DOCS / "api" / f"{name}.rst").read_text(encoding="utf-8")
        assert re.search(rf"^\.\. autofunction:: {name}$", page, flags=re.MULTILINE), name
        cited = set(re.findall(r":ref:`(spec[\w-]*)`", page))
        assert cited, f"api/{name}.rst cites no section of the specification"
        assert cited <= labels, f"api/{name}.rst cites unknown sections {cited - labels}"


def test_the_api_index_lists_every_public_function_and_page() -> None:
    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    listed = set(re.findall(r"^   (\w+)$", api, flags=re.MULTILINE))
    assert set(xpsoftmax.__all__) <= listed
    in_toctree = set(re.findall(r"^   api/(\w+)$", api, flags=re.MULTILINE))
    assert in_toctree == {page.stem for page in API_PAGES}


def test_the_index_lists_every_page() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    entries = set(re.findall(r"^   (\w+)$", index, flags=re.MULTILINE))
    assert {page.stem for page in PAGES} - {"index"} <= entries
