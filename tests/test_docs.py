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
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

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
        "user_guide",
        "extending",
        "measurements",
    } <= names


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The HTML site, built once as CI builds it: with -W, any warning fails the build."""
    if importlib.util.find_spec("sphinx") is None or importlib.util.find_spec("numpydoc") is None:
        pytest.fail("building the docs needs sphinx and numpydoc (the [docs] extra)")
    out = tmp_path_factory.mktemp("docs")
    # The command of docs/Makefile and CI, with the doctrees out of the source tree.
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    proc = subprocess.run(
        [*command, "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "html"


@pytest.mark.site
def test_docs_build_without_warnings(site: Path) -> None:
    assert (site / "api.html").exists()
    assert {page.stem for page in PAGES} <= {page.stem for page in site.glob("*.html")}


def _content_pages(site: Path) -> list[Path]:
    """The built pages a reader navigates, not Sphinx's index and search pages."""
    skipped = {"genindex.html", "search.html", "py-modindex.html"}
    pages = [*site.glob("*.html"), *site.glob("api/*.html")]
    return sorted(page for page in pages if page.name not in skipped)


@pytest.mark.site
def test_every_page_but_the_landing_one_has_its_section_navigation(site: Path) -> None:
    """pydata-sphinx-theme's left sidebar lists the pages of the current section: each page
    sits in a section (a page with a toctree of its own), so the list is never empty."""
    for page in _content_pages(site):
        html = page.read_text(encoding="utf-8")
        start = html.find('aria-label="Section Navigation"')
        if page.name == "index.html":
            assert start == -1, "the landing page lists the sections itself"
            continue
        assert start != -1, page
        nav = html[start : html.index("</nav>", start)]
        links = re.findall(r'<a class="reference internal" href="([^"]+)"', nav)
        assert len(links) >= 2, (page, links)
        if page.stem not in _toctree("index"):  # a page of a section: marked as the current one
            assert "current active" in nav, page


class _Tables(HTMLParser):
    """Every table of a page: its declared column widths and, per cell, its words."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self._cell: list[tuple[str, bool, bool]] | None = None
        self._header = False
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            table: dict[str, Any] = {"class": attributes.get("class") or "", "widths": []}
            table["rows"] = []
            self.tables.append(table)
            self._open.append(table)
        elif not self._open:
            return
        elif tag == "col":
            width = re.search(r"width:\s*([\d.]+)%", attributes.get("style") or "")
            if width:
                self._open[-1]["widths"].append(float(width.group(1)))
        elif tag == "tr":
            self._open[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell, self._header = [], tag == "th"
            self._open[-1]["rows"][-1].append(self._cell)
        elif tag == "code":
            self._code += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._open:
            self._open.pop()
        elif tag in ("td", "th"):
            self._cell = None
        elif tag == "code":
            self._code -= 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += [(word, self._code > 0, self._header) for word in data.split()]


#: The content column of a 1280-pixel-wide window, in em of the 16-pixel body text: the theme
#: gives the left sidebar 25% (320 px) and the right one 17rem (272 px), and pads the article
#: by 1rem on each side: 656 px. A wider window gives at most 47em.
CONTENT_EM = 41.0
#: Widths of a character, in em, on the generous side: body text (system-ui), bold header
#: text, and code (monospace at 0.875em, plus its padding and border once per word).
TEXT_EM, HEADER_EM, CODE_EM, CODE_BOX_EM = 0.55, 0.6, 0.53, 0.6
#: A cell's padding, both sides (0.5rem each).
CELL_PADDING_EM = 1.0


def _narrowest(table: dict[str, Any]) -> list[float]:
    """Each column's narrowest width in em: its longest word (no line breaks inside a word)."""
    columns = max(len(row) for row in table["rows"])
    narrowest = [0.0] * columns
    for row in table["rows"]:
        for i, cell in enumerate(row):
            for word, code, header in cell:
                em = len(word) * (CODE_EM if code else HEADER_EM if header else TEXT_EM)
                em += (CODE_BOX_EM if code else 0.0) + CELL_PADDING_EM
                narrowest[i] = max(narrowest[i], em)
    return narrowest


@pytest.mark.site
def test_no_table_overflows_its_column(site: Path) -> None:
    """Every table fits the content column of a 1280-pixel window: each column within its
    declared width (``:widths:``), or the table as a whole where none is declared. Tables
    marked ``wide`` scroll in their own box instead, which only a table that cannot fit may
    be, and which docs/_static/xpsoftmax.css gives every table on a narrower screen."""
    stylesheet = (DOCS / "_static" / "xpsoftmax.css").read_text(encoding="utf-8")
    rule = re.search(r"\.bd-article table \{([^}]*)\}", stylesheet)
    assert rule is not None
    assert "overflow-x: auto" in rule.group(1)
    assert "max-width: 100%" in rule.group(1)
    checked = 0
    for page in _content_pages(site):
        html = page.read_text(encoding="utf-8")
        parser = _Tables()
        parser.feed(html)
        if parser.tables:
            assert "_static/xpsoftmax.css" in html, page
        for table in parser.tables:
            narrowest = _narrowest(table)
            where = f"{page.relative_to(site)}: columns of {[round(w, 1) for w in narrowest]} em"
            if "wide" in table["class"].split():
                assert sum(narrowest) > CONTENT_EM, f"{where} fit: it need not be wide"
            elif table["widths"]:
                declared = [share / 100 * CONTENT_EM for share in table["widths"]]
                assert all(n <= d for n, d in zip(narrowest, declared, strict=True)), (
                    f"{where}, declared {[round(d, 1) for d in declared]}"
                )
            else:
                assert sum(narrowest) <= CONTENT_EM, f"{where} exceed {CONTENT_EM} em"
            checked += 1
    assert checked >= 20  # the parser found the site's tables


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


def _toctree(page: str) -> list[str]:
    """The pages a page's toctrees list, in order."""
    text = (DOCS / f"{page}.rst").read_text(encoding="utf-8")
    entries = []
    for block in re.findall(r"^\.\. toctree::\n((?:   .*\n|\n)+)", text, flags=re.MULTILINE):
        entries += re.findall(r"^   ([\w/]+)$", block, flags=re.MULTILINE)
    return entries


def test_every_page_sits_in_one_section_of_the_index() -> None:
    """The index's toctree holds the sections; each section's holds its pages, so that the
    theme's section navigation has pages to list."""
    sections = _toctree("index")
    assert sections == ["user_guide", "extending", "measurements", "api"]
    placed = [page for section in sections for page in _toctree(section)]
    assert len(placed) == len(set(placed))  # no page in two sections
    top_level = {page.stem for page in PAGES} - {"index"} - set(sections)
    assert top_level <= set(placed)


def test_the_landing_page_shows_the_install_line_three_examples_and_each_section() -> None:
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    assert '$ pip install ".[jax,torch,cli]"' in index
    examples = doctest.DocTestParser().get_examples(index)
    imported = {e.source.split()[1] for e in examples if e.source.startswith("import ")}
    assert {"numpy", "jax", "torch"} <= imported  # and test_examples_run runs them
    for section in _toctree("index"):
        described = re.search(
            rf"^:doc:`{section}`\n   (\S.*(?:\n   \S.*)*)", index, flags=re.MULTILINE
        )
        assert described is not None, section
        sentence = " ".join(described.group(1).split())
        assert sentence.endswith("."), sentence
        assert ". " not in sentence, sentence  # one sentence


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
