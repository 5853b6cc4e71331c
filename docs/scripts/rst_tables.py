"""How the docs scripts write what they generate: reStructuredText list-tables, into
``docs/_generated``, printed as well so that a run shows what it wrote."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "_generated"


def list_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], options: Sequence[str] = ()
) -> list[str]:
    """The lines of a ``list-table`` whose first row is `header`; `options` are its directive
    options after ``:header-rows: 1``, such as ``":class: wide"``."""
    lines = [".. list-table::", "   :header-rows: 1", *(f"   {option}" for option in options), ""]
    for cells in (header, *rows):
        lines += [f"   * - {cells[0]}", *(f"     - {cell}" for cell in cells[1:])]
    return lines


def write(name: str, lines: list[str], out: Path = OUT) -> None:
    """Write `lines` to ``<out>/<name>`` (``docs/_generated`` unless told) and print them."""
    text = "\n".join(lines) + "\n"
    (out / name).write_text(text, encoding="utf-8")
    print(text, end="")
