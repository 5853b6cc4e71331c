"""Each bug of tests/buggy.py is named by the toolkit, by variant and check, and only there."""

import re

import buggy
import numpy as np
import pytest
from test_entropy import reference

from xpsoftmax import testing

LOGITS = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
# float32's exp(-200) underflows to 0: a probability of exactly zero.
GAPPED = np.array([[0.0, -200.0, 1.0], [2.0, 0.5, -1.0]], dtype=np.float32)

CASES = [
    (buggy.entropy_in_place, LOGITS, ["numpy", "jax", "torch"], {"numpy", "torch"}, "mutation"),
    (
        buggy.entropy_python_float,
        LOGITS,
        ["numpy", "dask", "jax.jit"],
        {"dask", "jax.jit"},
        "laziness",
    ),
    (buggy.entropy_float64, LOGITS, ["numpy", "torch"], {"numpy", "torch"}, "types"),
    (buggy.entropy_log_zero, GAPPED, ["numpy", "jax", "torch"], {"numpy"}, "warnings"),
]
MESSAGES = {
    "mutation": "fn modified its argument logits (position 0) in place",
    "laziness": "",
    "types": "dtype float64, expected float32 (the input's)",
    "warnings": "RuntimeWarning: divide by zero encountered in log",
}


@pytest.mark.parametrize(("fn", "logits", "variants", "named", "check"), CASES)
def test_the_toolkit_names_the_bug(fn, logits, variants, named, check):
    with pytest.raises(AssertionError) as caught:
        testing.check_function(fn, logits, reference=reference, variants=variants)
    # One line per finding; a message of several lines continues on indented lines.
    lines = [line for line in str(caught.value).splitlines()[1:] if not line.startswith(" ")]
    assert {line.split(":")[0] for line in lines} == named
    for line in lines:
        assert re.match(rf"[\w.]+: {check}: ", line), line
        assert MESSAGES[check] in line


def test_the_fixed_function_passes_where_the_bugs_were_caught():
    from entropy_package import softmax_entropy

    testing.check_function(
        softmax_entropy, GAPPED, reference=reference, variants=["numpy", "dask", "jax", "torch"]
    )
