"""xpsoftmax.testing, the toolkit for library authors: each check fails where it should, naming the
variant and the check, and passes a correct function. The example package
(examples/entropy_package, run by .ci/run) tests a function outside the library with it."""

from __future__ import annotations

import re
from typing import Any

import array_api_compat
import numpy as np
import pytest
from xpsoftmax.testing.pytest_plugin import variant_params

from xpsoftmax import backends, testing


def scaled_exp(x: Any, *, scale: float = 2.0) -> Any:
    xp = array_api_compat.array_namespace(x)
    return xp.exp(x) * scale


def reference(x: np.ndarray, *, scale: float = 2.0) -> np.ndarray:
    return np.exp(x) * scale


X = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)


def failures(fn: Any, x: np.ndarray, variants: list[str], **options: Any) -> dict[str, str]:
    """{variant: check} of the lines of check_function's AssertionError."""
    with pytest.raises(AssertionError) as caught:
        testing.check_function(fn, x, reference=reference, variants=variants, **options)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"check_function({fn.__name__}) failed:"
    found = {}
    for line in lines[1:]:
        match = re.match(r"([\w.:]+): (\w+): ", line)
        assert match, line
        found[match[1]] = match[2]
    return found


def test_variants_carry_the_toolkit_names_and_our_ids() -> None:
    every = testing.variants(include_missing=True)
    assert [v.name for v in every][:7] == [
        "numpy", "array_api_strict", "dask", "jax", "jax.jit", "torch", "torch.compile"
    ]  # fmt: skip
    assert [v.id for v in every] == backends.all_variant_ids()
    assert testing.variants() == [v for v in every if v.available]
    params = variant_params()
    assert [p.id for p in params] == [v.name for v in every]
    assert all(bool(p.marks) == (not v.available) for p, v in zip(params, every, strict=True))


def test_a_correct_function_passes_with_its_gradients() -> None:
    checked = testing.check_function(
        scaled_exp, X, reference=reference, scale=3.0, grad=True,
        variants=["numpy", "dask", "jax", "jax.jit", "torch"],
    )  # fmt: skip
    assert checked == ["numpy", "dask", "jax", "jax.jit", "torch"]


def test_values_and_gradients_that_differ_fail() -> None:
    def off_by_a_little(x: Any) -> Any:
        return scaled_exp(x) * 1.001

    assert failures(off_by_a_little, X, ["numpy", "jax"]) == {"numpy": "values", "jax": "values"}

    def wrong_gradient(x: Any) -> Any:
        import jax

        return jax.lax.stop_gradient(scaled_exp(x))

    assert failures(wrong_gradient, X, ["jax"], grad=True) == {"jax": "gradients"}


def test_mutation_types_warnings_and_laziness_fail_where_they_happen() -> None:
    def in_place(x: Any) -> Any:
        x *= 1.0 + 0.0 * x
        x += 1.0
        return scaled_exp(x - 1.0)

    assert failures(in_place, X, ["numpy", "jax"]) == {"numpy": "mutation"}

    def widened(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.astype(scaled_exp(x), xp.float64)

    assert failures(widened, X, ["numpy"]) == {"numpy": "types"}

    def warns(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        # where() chooses 0, but log(0) has been computed (and warned) already.
        return scaled_exp(x) + xp.where(x > 5, xp.log(x * 0.0), 0.0)

    assert failures(warns, X, ["numpy", "jax"]) == {"numpy": "warnings"}

    def eager_only(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return scaled_exp(x) if float(xp.max(x)) < 10 else x

    assert failures(eager_only, X, ["numpy", "dask", "jax.jit"]) == {
        "dask": "laziness",
        "jax.jit": "laziness",
    }


def test_an_unknown_variant_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown variant 'tensorflow'; known: \\['numpy'"):
        testing.check_function(scaled_exp, X, reference=reference, variants=["tensorflow"])


def test_benchmark_reads_like_the_performance_table() -> None:
    table = testing.benchmark(
        scaled_exp, X, peer={"numpy": reference}, peer_name="NumPy", variants=["numpy", "dask"],
        rounds=2,
    )  # fmt: skip
    numpy_row, dask_row = table.rows
    assert numpy_row.ratio == pytest.approx(numpy_row.seconds / numpy_row.peer_seconds)
    assert dask_row.peer_seconds is None
    assert dask_row.ratio is None
    text = str(table).splitlines()
    assert text[0].split() == ["case", "scaled_exp", "NumPy", "ratio"]
    assert text[2].startswith("numpy scaled_exp / NumPy")
    assert re.search(r"\d+\.\d (us|ms)|\d\.\d{3} (ms|s)", text[2])
    assert ".. list-table::" in table.to_rst()
