"""Sphinx configuration of the xpsoftmax documentation.

Built with warnings as errors (``sphinx-build -W --keep-going -b html docs docs/_build/html``), as CI and
``tests/test_docs.py`` do. The API reference is hand-written: ``api.rst`` indexes one small page
per public function under ``api/``, each an ``autofunction`` directive and its links into the
specification (``spec.rst``), rather than stub files generated at build time, so a build never
writes into the source tree.
"""

from __future__ import annotations

import xpsoftmax

project = "xpsoftmax"
author = "The xpsoftmax developers"
copyright = "2026, The xpsoftmax developers"
release = xpsoftmax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

# Sources: the pages are reStructuredText; _build and generated outputs are not pages.
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "_generated", "**/.ipynb_checkpoints"]
root_doc = "index"

# numpydoc renders the docstrings; class members are listed on purpose in api.rst, not twice.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# A name in single backticks is code (the docstrings' convention), resolved when it can be.
default_role = "code"
autosummary_generate = False
autodoc_typehints = "none"  # numpydoc's Parameters sections already give the types

# pydata-sphinx-theme, as NumPy, SciPy and pandas use; its navigation bar carries the search box.
html_theme = "pydata_sphinx_theme"
html_title = f"xpsoftmax {release}"
# One stylesheet of our own: tables scroll inside their own box rather than widen the page.
html_static_path = ["_static"]
html_css_files = ["xpsoftmax.css"]
# The landing page lists the sections itself: no empty section navigation beside it.
html_sidebars = {"index": []}
html_theme_options = {
    "navbar_persistent": ["search-field"],
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
    "header_links_before_dropdown": 5,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
# The per-page source link points at files users do not need; the search page is built.
html_show_sourcelink = False
