"""What each kind of figure of ``xpsoftmax compare`` means: the notes under its table and plot.

The table and the plot say the same things, from the same function (`notes`): what each column
measures and in which unit, why a framework's own log_softmax can read millions of eps, and what
a time ratio means at a small size (per-call cost) and a large one (throughput). Each note is
given only when the cells it explains are in the run. The notes about single cells have a
footnote mark ("[1]"), which the table puts beside each figure they explain, so that a surprising
figure in the first rows already points to its explanation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ._compare_cells import Cell

#: Below this many entries a call's time is mostly its fixed cost (argument checks, dispatch).
PER_CALL_ENTRIES = 65536
#: A framework's own error this many eps or more is a lost digit, not a rounding: it gets a note.
LOST_DIGITS_EPS = 1e4
#: Where the rules and the measurements are explained.
ACCURACY_PAGE = "docs/accuracy.rst"
SPEC_SECTION = "docs/spec.rst, section spec-accuracy"


#: The figures a note explains cell by cell, each marked in the table where it stands.
LOST_DIGITS = "lost digits"
PER_CALL = "per-call cost"


class Note(NamedTuple):
    """One explanation: the column it is about, what it means, and the mark that points to it
    from the cells it explains ("" where it explains a whole column)."""

    term: str
    text: str
    mark: str = ""


def size_name(shape: tuple[int, int]) -> str:
    """``16x64``: how the table, the plot and the notes name a (batch, n) shape."""
    return f"{shape[0]}x{shape[1]}"


def measures_per_call(shape: tuple[int, int]) -> bool:
    """Whether a time at `shape` is mostly a call's fixed cost rather than work per entry."""
    return shape[0] * shape[1] < PER_CALL_ENTRIES


def lost_digits(cells: list[Cell]) -> list[Cell]:
    """The cells where the framework's own function lost its digits (an error of millions of eps)."""
    return [c for c in cells if _lost(c)]


def _lost(cell: Cell) -> bool:
    return cell.their_error is not None and cell.their_error >= LOST_DIGITS_EPS


def _names(items: list[str]) -> str:
    return ", ".join(dict.fromkeys(items))


def footnote_marks(cells: list[Cell]) -> dict[str, str]:
    """The mark of each kind of cell-by-cell note the run needs: "[1]", "[2]", in table order."""
    kinds = []
    if lost_digits(cells):
        kinds.append(LOST_DIGITS)
    if any(c.ratio is not None and measures_per_call(c.shape) for c in cells):
        kinds.append(PER_CALL)
    return {kind: f"[{number}]" for number, kind in enumerate(kinds, 1)}


def cell_marks(cell: Cell, marks: dict[str, str]) -> dict[str, str]:
    """The marks of `cell`'s own error and time ratio ("" where no note is about them)."""
    lost = LOST_DIGITS in marks and _lost(cell)
    per_call = PER_CALL in marks and cell.ratio is not None and measures_per_call(cell.shape)
    return {
        "own error": marks[LOST_DIGITS] if lost else "",
        "time": marks[PER_CALL] if per_call else "",
    }


def _time_notes(cells: list[Cell], repeats: int | None, marks: dict[str, str]) -> list[Note]:
    small = sorted({c.shape for c in cells if measures_per_call(c.shape)})
    large = sorted({c.shape for c in cells if not measures_per_call(c.shape)})
    samples = f"best of {repeats}" if repeats else "best sample"
    text = (
        "time of xpsoftmax over the framework's own function, per call ("
        f"{samples}, interleaved); below 1x xpsoftmax is faster."
    )
    if large:
        text += f" At {_names([size_name(s) for s in large])} it measures throughput."
    elif small:
        text += " --full adds 256x1024, which measures throughput."
    result = [Note("time ours/own", text)]
    if small:
        result.append(
            Note(
                f"time at {_names([size_name(s) for s in small])}",
                "per-call cost, not throughput: xpsoftmax's argument checks and one dispatch"
                " per array operation against the framework's one fused kernel, microseconds"
                " that matter in a loop of small calls.",
                marks.get(PER_CALL, ""),
            )
        )
    return result


def notes(
    cells: list[Cell],
    wide: bool = False,
    repeats: int | None = None,
    marks: dict[str, str] | None = None,
) -> list[Note]:
    """The notes that explain the figures of `cells`; `wide` adds those of the wide columns.

    `marks` (`footnote_marks`) are the table's marks, given to the notes they point to; the
    plot, which draws what the marks say (hatched bars, an arrow), gives none.
    """
    marks = marks or {}
    result = [
        Note(
            "error",
            "largest error of xpsoftmax against the exact (mpmath) oracle, in eps: the dtype's"
            " machine epsilon (2**-23 in float32, 2**-52 in float64), relative to each entry."
            " bound: the error allowed at that entry, from the input's size and condition"
            f" ({SPEC_SECTION}). ok: every entry within its bound.",
        ),
        Note(
            "own error",
            "the same error for the framework's own function (SciPy for numpy, array_api_strict"
            " and dask; autodiff for the Jacobians), in eps.",
        ),
    ]
    lost = lost_digits(cells)
    if lost:
        result.append(
            Note(
                "own error in the millions of eps",
                f"expected, not a failure ({_names([c.function for c in lost])}): the first input"
                " row has one dominant logit, where log_softmax is about -2.5e-9. The textbook"
                " x - max - log(sum(exp(x - max))) gets it as the log of a sum near 1, to within"
                " 1 eps of 1 (0 in float32), which relative to -2.5e-9 is up to 1/eps:"
                " no correct digit. xpsoftmax keeps those digits (log1p); see"
                f' {ACCURACY_PAGE} ("Input families", dominant) and {SPEC_SECTION}.',
                marks.get(LOST_DIGITS, ""),
            )
        )
    if wide:
        result.append(
            Note(
                "diff vs own",
                "largest difference between xpsoftmax and the framework's own result, in eps of"
                " the larger of the two at each entry, over the whole input; where a value is"
                " near 0 (logsumexp of the dominant row, about 2.5e-9) a difference well within"
                " the bound reads as millions of eps.",
            )
        )
        result.append(Note("ours, own", "the best time per call, in microseconds (us)."))
    return result + _time_notes(cells, repeats, marks)


def wrap_notes(items: list[Note], width: int = 100) -> list[str]:
    """The notes as text lines of at most `width` columns, each term (after its mark, if it has
    one) before its explanation."""
    import textwrap

    lines = ["notes:"]
    for term, text, mark in items:
        lines += textwrap.wrap(
            f"{mark} {term}: {text}" if mark else f"{term}: {text}",
            width=width,
            initial_indent="  ",
            subsequent_indent="    ",
        )
    return lines
