"""The "Coming from PyTorch" page's tables say what they can be checked to say.

Each table lists every argument of a PyTorch function (read from PyTorch's own signature) and
every argument of xpsoftmax's counterpart (its signature, or the specification's for a planned
function), with the defaults each has. Every row that claims agreement ("same") is run on both
sides on a small input, against PyTorch's own result; so are the xpsoftmax-only rows that say
what they are the same as.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import xpsoftmax

torch = pytest.importorskip("torch")  # CI installs torch: this never skips there
F = torch.nn.functional

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = (DOCS / "coming_from_pytorch.rst").read_text(encoding="utf-8")
SPEC = (DOCS / "spec.rst").read_text(encoding="utf-8")

Row = tuple[str, str, str]


def tables() -> dict[str, list[Row]]:
    """Each list-table by its title ("torch.logsumexp against xpsoftmax.logsumexp"): its rows."""
    found: dict[str, list[Row]] = {}
    for block in PAGE.split(".. list-table:: ")[1:]:
        title, _, body = block.partition("\n")
        cells = re.findall(
            r"^   \* - (.*)\n     - (.*)\n     - (.*(?:\n       .*)*)", body, flags=re.MULTILINE
        )
        found[title.strip()] = [(a, b, " ".join(c.split())) for a, b, c in cells[1:]]
    return found


def names(column: str) -> dict[str, object]:
    """``dim=None``, ``b=None``, ``return_sign=False`` -> {"dim": None, ...}; "none" -> {}."""
    result: dict[str, object] = {}
    for item in re.findall(r"``([^`]+)``", column):
        name, eq, default = item.partition("=")
        result[name] = ast.literal_eval(default) if eq else inspect.Parameter.empty
    return result


def _torch_logsumexp_parameters() -> dict[str, object]:
    # A builtin without an introspectable signature: its docstring's first line gives it.
    line = torch.logsumexp.__doc__.strip().splitlines()[0]
    parsed = ast.parse(f"def {line}: pass").body[0]
    assert isinstance(parsed, ast.FunctionDef)
    args = parsed.args
    plain = [a.arg for a in args.args]
    defaults = [ast.literal_eval(d) for d in args.defaults]
    result: dict[str, object] = dict.fromkeys(plain, inspect.Parameter.empty)
    result.update(zip(plain[len(plain) - len(defaults) :], defaults, strict=True))
    result.update(
        {
            a.arg: ast.literal_eval(d)
            for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
            if d
        }
    )
    return result


def _parameters(function: Callable[..., object]) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(function).parameters.items()}


def _spec_parameters(name: str) -> dict[str, object]:
    """A planned function's arguments, from the specification's signature block."""
    match = re.search(rf"^   {name}\((.*?)\)$", SPEC, flags=re.MULTILINE | re.DOTALL)
    assert match, name
    result: dict[str, object] = {}
    for item in " ".join(match.group(1).split()).split(","):
        item = item.strip()
        if item in ("/", "*"):
            continue
        key, eq, default = item.partition("=")
        result[key] = ast.literal_eval(default) if eq else inspect.Parameter.empty
    return result


SIGNATURES: dict[str, tuple[Callable[[], dict[str, object]], Callable[[], dict[str, object]]]] = {
    "torch.nn.functional.softmax against xpsoftmax.softmax": (
        lambda: _parameters(F.softmax),
        lambda: _parameters(xpsoftmax.softmax),
    ),
    "torch.logsumexp against xpsoftmax.logsumexp": (
        _torch_logsumexp_parameters,
        lambda: _parameters(xpsoftmax.logsumexp),
    ),
    "torch.nn.functional.cross_entropy against xpsoftmax.cross_entropy": (
        lambda: _parameters(F.cross_entropy),
        lambda: _parameters(xpsoftmax.cross_entropy),
    ),
    "torch.nn.functional.linear_cross_entropy against xpsoftmax.linear_cross_entropy": (
        lambda: _parameters(F.linear_cross_entropy),
        lambda: _spec_parameters("linear_cross_entropy"),
    ),
}


def test_every_function_has_its_table() -> None:
    assert set(tables()) == set(SIGNATURES)


@pytest.mark.parametrize("title", sorted(SIGNATURES))
def test_every_argument_of_both_sides_is_listed_with_its_default(title: str) -> None:
    theirs, ours = SIGNATURES[title]
    rows = tables()[title]
    listed_theirs = {k: v for row in rows for k, v in names(row[0]).items()}
    listed_ours = {k: v for row in rows for k, v in names(row[1]).items()}
    assert listed_theirs == theirs()
    assert listed_ours == ours()
    for row in rows:
        assert row[2], row  # every row says how the two differ, or that they do not


def close(ours: object, theirs: object) -> None:
    expected = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(np.asarray(ours), np.asarray(expected), rtol=1e-12, atol=1e-15)


rng = np.random.default_rng(5)
X3 = rng.normal(size=(3, 4, 5)) * 3
T3 = torch.tensor(X3)
MASK = rng.random((3, 4, 5)) < 0.7
MASK[..., 0] = True
LOGITS = rng.normal(size=(6, 4)) * 2
TARGET = np.array([0, 3, 1, 2, 2, 1])
PROBS = rng.dirichlet(np.ones(4), size=6)
WEIGHT = np.array([1.0, 2.0, 0.5, 3.0])
t = torch.tensor


def _softmax_checks(
    ours: Callable[..., object], theirs: Callable[..., object]
) -> dict[str, Callable[[], None]]:
    return {
        "input": lambda: close(ours(T3), theirs(T3, dim=-1)),
        "dim=None": lambda: close(ours(X3, axis=1), theirs(T3, dim=1)),
        "dtype=None": lambda: close(
            ours(T3.to(torch.float32).to(torch.float64)),
            theirs(T3.to(torch.float32), dim=-1, dtype=torch.float64),
        ),
        "temperature=1.0": lambda: close(ours(X3, temperature=2.5), theirs(T3 / 2.5, dim=-1)),
        "where=None": lambda: close(
            ours(X3, where=MASK), theirs(T3.masked_fill(~t(MASK), -torch.inf), dim=-1)
        ),
    }


def _logsumexp_checks() -> dict[str, Callable[[], None]]:
    ours = xpsoftmax.logsumexp
    return {
        "input": lambda: close(ours(X3), torch.logsumexp(T3, -1)),
        "dim": lambda: close(ours(X3, axis=(0, 2)), torch.logsumexp(T3, (0, 2))),
        "keepdim=False": lambda: close(
            ours(X3, axis=1, keepdims=True), torch.logsumexp(T3, 1, keepdim=True)
        ),
        "temperature=1.0": lambda: close(
            ours(X3, temperature=0.5), 0.5 * torch.logsumexp(T3 / 0.5, -1)
        ),
        "where=None": lambda: close(
            ours(X3, where=MASK), torch.logsumexp(T3.masked_fill(~t(MASK), -torch.inf), -1)
        ),
    }


def _cross_entropy_checks() -> dict[str, Callable[[], None]]:
    ours = xpsoftmax.cross_entropy
    x3, y3 = rng.normal(size=(2, 4, 3)), rng.integers(0, 4, size=(2, 3))
    ignored = TARGET.copy()
    ignored[[1, 4]] = -100

    def ignore_index() -> None:
        close(ours(LOGITS, ignored, ignore_index=-100), F.cross_entropy(t(LOGITS), t(ignored)))
        with pytest.raises(ValueError, match="ignore_index is None by default, not -100"):
            ours(LOGITS, ignored)
        assert float(ours(LOGITS, np.full(6, -100), ignore_index=-100)) == 0.0
        assert torch.isnan(F.cross_entropy(t(LOGITS), t(np.full(6, -100))))

    def class_axis() -> None:
        close(ours(LOGITS, TARGET), F.cross_entropy(t(LOGITS), t(TARGET)))
        close(ours(x3, y3, axis=1), F.cross_entropy(t(x3), t(y3)))

    def reduction() -> None:
        for r in ("mean", "sum", "none"):
            close(
                ours(LOGITS, TARGET, reduction=r),
                F.cross_entropy(t(LOGITS), t(TARGET), reduction=r),
            )

    return {
        "input": class_axis,
        "target": lambda: close(ours(LOGITS, PROBS), F.cross_entropy(t(LOGITS), t(PROBS))),
        "weight=None": lambda: close(
            ours(LOGITS, TARGET, weight=WEIGHT),
            F.cross_entropy(t(LOGITS), t(TARGET), weight=t(WEIGHT)),
        ),
        "ignore_index=-100": ignore_index,
        "reduction='mean'": reduction,
        "label_smoothing=0.0": lambda: close(
            ours(LOGITS, TARGET, label_smoothing=0.2),
            F.cross_entropy(t(LOGITS), t(TARGET), label_smoothing=0.2),
        ),
        "axis=-1": lambda: close(ours(x3, y3, axis=1), F.cross_entropy(t(x3), t(y3))),
        "temperature=1.0": lambda: close(
            ours(LOGITS, TARGET, temperature=2.0), F.cross_entropy(t(LOGITS / 2.0), t(TARGET))
        ),
    }


CHECKS: dict[str, dict[str, Callable[[], None]]] = {
    "torch.nn.functional.softmax against xpsoftmax.softmax": {
        **_softmax_checks(xpsoftmax.softmax, F.softmax),
        **{f"log {k}": v for k, v in _softmax_checks(xpsoftmax.log_softmax, F.log_softmax).items()},
    },
    "torch.logsumexp against xpsoftmax.logsumexp": _logsumexp_checks(),
    "torch.nn.functional.cross_entropy against xpsoftmax.cross_entropy": _cross_entropy_checks(),
}


def _key(row: Row) -> str:
    """The torch argument a row is about, or ours where torch has none; defaults as Python."""
    column = row[0] if row[0] != "none" else row[1]
    first = re.findall(r"``([^`]+)``", column)[0]
    name, eq, default = first.partition("=")
    return f"{name}={ast.literal_eval(default)!r}" if eq else name


def _claims() -> list[tuple[str, str]]:
    """(table, row key) of every row that claims agreement with PyTorch ("same", "same as ...",
    or "pass ... for PyTorch's result"); the planned linear_cross_entropy has no code to run."""
    return [
        (title, _key(row))
        for title, rows in tables().items()
        if title in CHECKS
        for row in rows
        if row[2].startswith("same") or " same as " in row[2] or "PyTorch's result" in row[2]
    ]


@pytest.mark.parametrize(
    ("title", "key"), _claims(), ids=[f"{t.split()[0]}:{k}" for t, k in _claims()]
)
def test_a_claim_of_agreement_holds(title: str, key: str) -> None:
    checks = CHECKS[title]
    assert key in checks, f"{title}: the row {key!r} claims agreement and has no check"
    checks[key]()
    if f"log {key}" in checks:  # the softmax table serves log_softmax too
        checks[f"log {key}"]()
