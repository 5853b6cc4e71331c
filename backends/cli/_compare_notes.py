"""What each kind of figure of ``xpsoftmax compare`` means: the notes under its table and plot.

The table and the plot say the same things, from the same function (`notes`): what each column
measures and in which unit, why a framework's own log_softmax can read millions of eps, and what
a time ratio means at a small size (per-call cost) and a large one (throughput). Each note is
given only when the cells it explains are in the run.
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


class Note(NamedTuple):
    """One explanation: the column or mark it is about, and what it means."""

    term: str
    text: str


def size_name(shape: tuple[int, int]) -> str:
    """``16x64``: how the table, the plot and the notes name a (batch, n) shape."""
    return f"{shape[0]}x{shape[1]}"


def measures_per_call(shape: tuple[int, int]) -> bool:
    """Whether a time at `shape` is mostly a call's fixed cost rather than work per entry."""
    return shape[0] * shape[1] < PER_CALL_ENTRIES


def lost_digits(cells: list[Cell]) -> list[Cell]:
    """The cells where the framework's own function lost its digits (an error of millions of eps)."""
    return [c for c in cells if c.their_error is not None and c.their_error >= LOST_DIGITS_EPS]


def _names(items: list[str]) -> str:
    return ", ".join(dict.fromkeys(items))


def _time_note(cells: list[Cell], repeats: int | None) -> str:
    small = sorted({c.shape for c in cells if measures_per_call(c.shape)})
    large = sorted({c.shape for c in cells if not measures_per_call(c.shape)})
    samples = f"best of {repeats}" if repeats else "best sample"
    text = (
        "time of xpsoftmax over the framework's own function, per call ("
        f"{samples}, interleaved); below 1x xpsoftmax is faster."
    )
    if small:
        text += (
            f" At {_names([size_name(s) for s in small])} it measures per-call cost: argument"
            " checks and one dispatch per array operation against one fused kernel, microseconds"
            " that matter in a loop of small calls, not throughput."
        )
    if large:
        text += f" At {_names([size_name(s) for s in large])} it measures throughput."
    elif small:
        text += " --full adds 256x1024, which measures throughput."
    return text


def notes(cells: list[Cell], wide: bool = False, repeats: int | None = None) -> list[Note]:
    """The notes that explain the figures of `cells`; `wide` adds those of the wide columns."""
    bound = "--wide shows the bound" if not wide else "the bound column"
    result = [
        Note(
            "error",
            "largest error of xpsoftmax against the exact (mpmath) oracle, in eps: the dtype's"
            " machine epsilon (2**-23 in float32, 2**-52 in float64), relative to each entry."
            f" ok: every entry within its bound ({SPEC_SECTION}; {bound}).",
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
    result.append(Note("time ours/own", _time_note(cells, repeats)))
    return result


def wrap_notes(items: list[Note], width: int = 100) -> list[str]:
    """The notes as text lines of at most `width` columns, each term before its explanation."""
    import textwrap

    lines = ["notes:"]
    for term, text in items:
        lines += textwrap.wrap(
            f"{term}: {text}", width=width, initial_indent="  ", subsequent_indent="    "
        )
    return lines
