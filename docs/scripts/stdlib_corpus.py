"""A text corpus available offline: the Python standard library's own documentation, as words.

The Large vocabularies page's worked example trains a next-word model on it
(``docs/scripts/next_word_training.py``). Each importable public module of
``sys.stdlib_module_names``, and each public submodule of its packages (``email.mime.text``,
``xml.etree.ElementTree``, ...), is rendered by ``pydoc`` as plain text (its docstrings,
signatures and member lists), in sorted order, followed by the text of ``help()``'s topics
(the language reference's sections that pydoc ships), and split into words: case-sensitive
identifiers, ``[A-Za-z][A-Za-z0-9_]*``. Sections whose text depends on the machine rather than
the library are left out (``FILE``, ``MODULE REFERENCE``, and the module-level values of
``os``, ``sys`` and the like: the environment, the command line, the paths), and so are object
addresses (``0x7f...``), so the corpus is the same on every run of one Python installation. On
Python 3.11 it holds more than 20,000 distinct words.

Rendering imports every module, which takes a while and may print or warn, so it runs in a
child process, once: the words are cached as token ids and a vocabulary (most frequent first)
in a ``.npz`` file under the system's temporary directory, keyed by the Python version and the
module list.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

#: Modules that do something on import (open a browser, print, start a GUI) or cannot be rendered
#: without a display.
SKIPPED = {
    "antigravity",
    "this",
    "idlelib",
    "tkinter",
    "turtle",
    "turtledemo",
    "ensurepip",
}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
#: pydoc's top-level sections whose text is the machine's, not the library's, in every module,
#: and the modules whose module-level values (``DATA``) are too: the environment, the command
#: line, the paths.
MACHINE_SECTIONS = {"FILE", "MODULE REFERENCE"}
MACHINE_DATA = {"os", "posix", "site", "sys", "sysconfig"}


def stdlib_modules() -> list[str]:
    """The public top-level standard-library modules, sorted."""
    names = sorted(sys.stdlib_module_names)
    return [name for name in names if not name.startswith("_") and name not in SKIPPED]


def with_submodules(modules: list[str]) -> list[str]:
    """The importable modules and the public submodules of those that are packages, sorted."""
    import pkgutil

    found = set()
    for name in modules:
        module = _import(name)
        if module is not None:
            found.add(name)
        if module is not None and hasattr(module, "__path__"):
            walk = pkgutil.walk_packages(module.__path__, f"{name}.", onerror=lambda _: None)
            found.update(info.name for info in walk if _public(info.name))
    return sorted(found)


def _public(name: str) -> bool:
    return not any(part.startswith("_") or part in {"test", "tests"} for part in name.split("."))


def _import(name: str) -> Any:
    """The module, or None where this platform lacks it (winreg, msvcrt, ...)."""
    import pydoc

    try:
        return pydoc.safeimport(name)
    except pydoc.ErrorDuringImport:
        return None


def render(module: str) -> str:
    """pydoc's plain-text page of one module, without the machine-specific sections; empty where
    the module cannot be imported here."""
    import pydoc

    if _import(module) is None:
        return ""
    page = pydoc.render_doc(module, renderer=pydoc.plaintext)
    skipped = MACHINE_SECTIONS | ({"DATA"} if module in MACHINE_DATA else set())
    kept: list[str] = []
    keep = True
    for line in page.splitlines():
        if line and not line[0].isspace():  # a section heading
            keep = line.strip() not in skipped
        if keep:
            kept.append(line)
    return ADDRESS.sub(" ", "\n".join(kept))


def words(text: str) -> list[str]:
    return WORD.findall(text)


def help_topics() -> str:
    """The text of ``help()``'s topics (sections of the language reference), in sorted order."""
    from pydoc_data.topics import topics

    return "\n".join(topics[name] for name in sorted(topics))


def _render_all(modules: list[str], with_topics: bool) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pages = [render(name) for name in with_submodules(modules)]
    return "\n".join([*pages, help_topics()] if with_topics else pages)


def cache_path(modules: list[str]) -> Path:
    key = hashlib.sha256("\n".join([sys.version, *modules]).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"xpsoftmax-stdlib-corpus-{key}.npz"


def load(modules: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(token ids of the corpus in reading order, vocabulary with the most frequent word first)
    for the given modules and their submodules, built once and cached; by default every module
    of `stdlib_modules` and ``help()``'s topics."""
    with_topics = modules is None
    modules = stdlib_modules() if modules is None else modules
    path = cache_path([*modules, str(with_topics)])
    if not path.exists():
        script = (
            "import json, sys; sys.path.insert(0, sys.argv[1]); import stdlib_corpus as c; "
            "c._build(json.loads(sys.argv[2]), sys.argv[3] == 'True', sys.argv[4])"
        )
        here = str(Path(__file__).resolve().parent)
        arguments = [here, json.dumps(modules), str(with_topics), str(path)]
        command = [sys.executable, "-c", script, *arguments]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"building the corpus failed:\n{done.stderr[-3000:]}")
    with np.load(path) as data:
        return data["ids"], [str(word) for word in data["vocabulary"]]


def _build(modules: list[str], with_topics: bool, path: str) -> None:
    tokens = words(_render_all(modules, with_topics))
    counts = Counter(tokens)
    vocabulary = sorted(counts, key=lambda word: (-counts[word], word))
    index = {word: i for i, word in enumerate(vocabulary)}
    ids = np.array([index[word] for word in tokens], dtype=np.int64)
    partial = Path(path).with_suffix(".partial.npz")
    np.savez(partial, ids=ids, vocabulary=np.array(vocabulary))
    partial.replace(path)


if __name__ == "__main__":
    ids, vocabulary = load()
    print(f"{len(ids):,} tokens, {len(vocabulary):,} distinct words")
