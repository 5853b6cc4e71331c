"""The public API: its names, its docstrings, and the examples in them (run as doctests)."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import xpsoftmax

#: The public functions (spec: Public functions), by topic.
PUBLIC = {
    *("softmax", "log_softmax", "logsumexp"),
    *("softmax_jacobian", "log_softmax_jacobian"),
    *("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp"),
    *("cross_entropy", "linear_cross_entropy", "linear_cross_entropy_vjp"),
    *("fit_temperature", "calibration_error", "calibration_curve"),
}
MODULES_WITH_EXAMPLES = [
    "xpsoftmax",
    "xpsoftmax._softmax",
    "xpsoftmax._jacobian",
    "xpsoftmax._loss",
    "xpsoftmax._calibration",
    "xpsoftmax._temperature",
    "xpsoftmax._linear_loss",
    "xpsoftmax.testing.oracle",
]


def test_all_lists_exactly_the_public_functions() -> None:
    assert set(xpsoftmax.__all__) == PUBLIC
    assert len(xpsoftmax.__all__) == len(PUBLIC)
    defined = {
        name
        for name, obj in vars(xpsoftmax).items()
        if not name.startswith("_") and inspect.isfunction(obj)
    }
    assert defined == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_function_has_a_numpydoc_docstring_with_examples(name: str) -> None:
    fn = getattr(xpsoftmax, name)
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
    assert "Examples\n--------\n" in doc, f"{name}'s docstring has no Examples section"
    assert ">>> " in doc.partition("Examples\n--------\n")[2]
    parameters = inspect.signature(fn).parameters
    assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())


@pytest.mark.parametrize("module_name", MODULES_WITH_EXAMPLES)
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {module_name}"


def test_every_public_function_has_a_doctest() -> None:
    finder = doctest.DocTestFinder()
    with_examples = set()
    for module_name in MODULES_WITH_EXAMPLES[1:-1]:  # the topic modules
        for test in finder.find(importlib.import_module(module_name)):
            if test.examples:
                with_examples.add(test.name.rpartition(".")[2])
    assert with_examples >= PUBLIC, sorted(PUBLIC - with_examples)
