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
        "testing_toolkit",
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

    from xpsoftmax import backends, testing

    objects: dict[str, object] = {name: getattr(xpsoftmax, name) for name in xpsoftmax.__all__}
    objects.update(
        {
            "backends": backends,
            "testing.oracle": oracle,
            "testing.bounds": bounds,
            "testing.variants": testing.variants,
            "testing.check_function": testing.check_function,
            "testing.benchmark": testing.benchmark,
            "testing.forgiven_warnings": testing.forgiven_warnings,
            "backends.InternalWarning": backends.InternalWarning,
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


def test_the_readme_has_two_commands_a_users_install_and_ci_s_tests() -> None:
    """The README's first command installs what the main job needs and runs it; its second is
    the test command, exactly as .ci/run ends; the contributor's setup is in CONTRIBUTING.md."""
    root = DOCS.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", section, flags=re.DOTALL)
    assert len(commands) == 2, commands
    install, tests = commands
    # PyTorch pinned: a range would let pip take the newest (on Linux, CUDA) build.
    assert 'pip install "torch==2.13.0" -e ".[cli,jax,torch]"' in install
    assert install.endswith("&& xpsoftmax compare --quick")
    assert "[all]" not in install
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert tests == ci[-1] == "python -m pytest -n 2"
    assert "CONTRIBUTING.md" in section
    assert "https://download.pytorch.org/whl/cpu" in section  # CPU-only PyTorch: its CPU wheel
    assert "these machines" not in readme
    contributing = (root / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert '-e ".[all]"' in contributing
    assert "## Setting up" in contributing  # the README links its anchor, #setting-up


def test_the_performance_page_leads_with_ratios_not_targets() -> None:
    """The page's tables are generated from the saved measurements, hold a ratio for every
    framework and size, and carry no target column (targets live with the benchmark suites)."""
    import json

    generated = DOCS / "_generated"
    page = (DOCS / "performance.rst").read_text(encoding="utf-8")
    first_section = page.split("\n----", 2)[1]
    assert ".. include:: _generated/performance_table.rst" in first_section
    for image in ("performance_ratios.png", "performance_throughput.png", "training_ratios.png"):
        assert f".. image:: _generated/{image}" in page
        assert (generated / image).read_bytes()[:4] == b"\x89PNG"
    assert "performance_targets.png" not in page
    table = (generated / "performance_table.rst").read_text(encoding="utf-8")
    data = json.loads((generated / "performance_data.json").read_text(encoding="utf-8"))
    assert data["machine"] in table
    for key, sizes in data["matrix"].items():
        function, variant = key.split("/")
        block = table.split(f".. list-table:: {function}\n", 1)[1].split(".. list-table::")[0]
        row = block.split(f"   * - {variant}\n", 1)[1].split("   * - ")[0]
        ratios = [float(r) for r in re.findall(r"     - ([0-9.]+) \(", row)]
        expected = [ours / peer for ours, peer, *_ in sizes.values()]
        assert ratios == [float(f"{r:.2f}") for r in expected], (key, ratios)
    training = (generated / "training_table.rst").read_text(encoding="utf-8")
    rows = json.loads((generated / "training_data.json").read_text(encoding="utf-8"))["rows"]
    for row in rows:
        assert f"   * - {row['label']}\n     - {row['ratio']:.2f}\n" in training
    for text in (page, table, training):
        assert "target" not in text.split("How the figures are measured")[0].lower()
        assert "met" not in re.findall(r"\b\w+\b", text.split("How the figures")[0])
