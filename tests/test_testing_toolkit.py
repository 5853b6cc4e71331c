"""xpsoftmax.testing, the toolkit for library authors: each check fails where it should, naming the
variant and the check, and passes a correct function; nothing but its AssertionError escapes, and
its verdicts do not depend on what ran before. The example package (examples/entropy_package,
run by .ci/run) tests a function outside the library with it; tests/test_toolkit_corpus.py runs
it on planted bugs and on public libraries' functions."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np
import pytest
from xpsoftmax.testing._results import compare
from xpsoftmax.testing.pytest_plugin import variant_params

from xpsoftmax import backends, testing


def scaled_exp(x: Any, *, scale: float = 2.0) -> Any:
    xp = array_api_compat.array_namespace(x)
    return xp.exp(x) * scale


def reference(x: np.ndarray, *, scale: float = 2.0) -> np.ndarray:
    return np.exp(x) * scale


X = np.linspace(-1.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
#: array-api-strict's test device, where this array-api-strict offers it (not beside NumPy 1).
DEVICE1 = backends.variant("array_api_strict:device1")
ON_DEVICE1 = [DEVICE1.name] if DEVICE1.available else []
CHEAP = ["numpy", "array_api_strict", "dask", *ON_DEVICE1]


def failures(
    fn: Any, x: np.ndarray, variants: list[str], ref: Any = reference, **options: Any
) -> dict[str, set[str]]:
    """{variant: checks} of the lines of check_function's AssertionError."""
    with pytest.raises(AssertionError) as caught:
        testing.check_function(fn, x, reference=ref, variants=variants, **options)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"check_function({fn.__name__}) failed:"
    found: dict[str, set[str]] = {}
    for line in lines[1:]:
        if line.startswith("    "):  # a message of several lines continues, indented
            continue
        match = re.match(r"([\w.:]+): (\w+): ", line)
        assert match, line
        found.setdefault(match[1], set()).add(match[2])
    return found


def message(
    fn: Any, x: np.ndarray, variants: list[str], ref: Any = reference, **options: Any
) -> str:
    with pytest.raises(AssertionError) as caught:
        testing.check_function(fn, x, reference=ref, variants=variants, **options)
    return str(caught.value)


def test_variants_carry_the_toolkit_names_and_our_ids() -> None:
    every = testing.variants(include_missing=True)
    assert [v.name for v in every][:7] == [
        "numpy", "array_api_strict", "dask", "jax", "jax.jit", "torch", "torch.compile"
    ]  # fmt: skip
    assert every[-1].name == "array_api_strict:device1"
    # array-api-strict's own device: no hardware needed, but NumPy 2 to bring results back.
    assert every[-1].available or np.lib.NumpyVersion(np.__version__) < "2.0.0"
    assert [v.id for v in every] == backends.all_variant_ids()
    assert testing.variants() == [v for v in every if v.available]
    params = variant_params()
    assert [p.id for p in params] == [v.name for v in every]
    assert all(bool(p.marks) == (not v.available) for p, v in zip(params, every, strict=True))


def test_a_correct_function_passes_with_its_gradients() -> None:
    checked = testing.check_function(
        scaled_exp, X, reference=reference, scale=3.0, grad=True,
        variants=["numpy", "dask", "jax", "jax.jit", "torch", *ON_DEVICE1],
    )  # fmt: skip
    assert checked == ["numpy", "dask", "jax", "jax.jit", "torch", *ON_DEVICE1]


def test_values_and_gradients_that_differ_fail() -> None:
    def off_by_a_little(x: Any) -> Any:
        return scaled_exp(x) * 1.001

    assert failures(off_by_a_little, X, ["numpy", "jax"]) == {
        "numpy": {"values"},
        "jax": {"values"},
    }

    def wrong_gradient(x: Any) -> Any:
        import jax

        return jax.lax.stop_gradient(scaled_exp(x))

    assert failures(wrong_gradient, X, ["jax"], grad=True) == {"jax": {"gradients"}}


def test_mutation_types_warnings_and_laziness_fail_where_they_happen() -> None:
    def in_place(x: Any) -> Any:
        x *= 1.0 + 0.0 * x
        x += 1.0
        return scaled_exp(x - 1.0)

    assert failures(in_place, X, ["numpy", "jax"]) == {"numpy": {"mutation"}}

    def widened(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.astype(scaled_exp(x), xp.float64)

    assert failures(widened, X, ["numpy"]) == {"numpy": {"types"}}

    def warns(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        # where() chooses 0, but log(0) has been computed (and warned) already.
        return scaled_exp(x) + xp.where(x > 5, xp.log(x * 0.0), 0.0)

    assert failures(warns, X, ["numpy", "jax"]) == {"numpy": {"warnings"}}

    def eager_only(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return scaled_exp(x) if float(xp.max(x)) < 10 else x

    assert failures(eager_only, X, ["numpy", "dask", "jax.jit"]) == {
        "dask": {"laziness"},
        "jax.jit": {"laziness"},
    }


def test_every_check_runs_and_says_what_it_found() -> None:
    def three_bugs(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        warnings.warn("three_bugs is deprecated", DeprecationWarning, stacklevel=1)
        x += 1.0
        return xp.exp(x)

    lines = message(three_bugs, X, ["numpy"]).splitlines()[1:]
    assert [line.split(": ")[1] for line in lines] == ["warnings", "mutation", "values"]
    assert (
        "DeprecationWarning: three_bugs is deprecated (at tests/test_testing_toolkit.py:"
        in lines[0]
    )


def test_an_exception_is_a_verdict_with_its_whole_message_and_the_user_frame() -> None:
    def refuses(x: Any) -> Any:
        raise ValueError("first line\nthe cause, on the second")

    lines = message(refuses, X, ["numpy", "array_api_strict"]).splitlines()
    assert lines[1].startswith("numpy: call: fn raised ValueError: first line")
    assert lines[2].startswith("    the cause, on the second (at tests/test_testing_toolkit.py:")
    assert lines[2].endswith(" in refuses)")
    assert lines[3].startswith("array_api_strict: call: ")


def test_nothing_but_the_verdict_escapes() -> None:
    def breaks_autograd(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        y = xp.exp(x)
        y += 1.0  # torch: exp's backward needs its output, now changed in place
        return y - 1.0

    found = failures(breaks_autograd, X, ["numpy", "torch", "jax"], ref=np.exp, grad=True)
    assert found == {"torch": {"gradients"}}

    class Opaque:
        pass

    def returns_an_object(x: Any) -> Any:
        return Opaque()

    assert failures(returns_an_object, X, CHEAP) == {v: {"types"} for v in CHEAP}


def test_results_are_checked_by_kind_and_part() -> None:
    def parts(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return x > 0, xp.argmax(x, axis=-1), (xp.sum(x, axis=-1), float(xp.sum(x)))

    def parts_reference(x: np.ndarray) -> Any:
        return x > 0, x.argmax(-1), (x.sum(-1), float(x.sum()))

    checked = testing.check_function(
        parts, X, reference=parts_reference, variants=["numpy", "array_api_strict", "torch"]
    )
    assert checked == ["numpy", "array_api_strict", "torch"]

    def a_float_for_a_bool(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.astype(x > 0, x.dtype)

    text = message(a_float_for_a_bool, X, ["numpy"], ref=lambda x: x > 0)
    assert "numpy: types: dtype float32, expected a bool dtype (the reference's)" in text

    def one_part_too_few(x: Any) -> Any:
        return (x,)

    text = message(one_part_too_few, X, ["numpy"], ref=lambda x: (x, x))
    assert "result has the parts ['[0]'], the reference's ['[0]', '[1]']" in text


def test_result_dtype_says_which_precision_a_result_owes() -> None:
    def in_float64(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.astype(x, xp.float64) * 2.0

    def ref(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float64) * 2.0

    assert failures(in_float64, X, ["numpy"], ref=ref) == {"numpy": {"types"}}
    for result_dtype in ("float64", np.float64, "reference"):
        testing.check_function(in_float64, X, reference=ref, result_dtype=result_dtype)
    with pytest.raises(ValueError, match="result_dtype must be"):
        testing.check_function(in_float64, X, reference=ref, result_dtype="int32")


def test_values_are_compared_entry_by_entry_and_at_the_edges_of_the_dtype() -> None:
    expected = np.array([1e30, 1.0, 2.0])
    assert compare(
        np.array([1e30, 1.001, 2.0]), expected, precision="float64", rtol=1e-12, atol=None
    )
    assert not compare(
        np.array([1e30, 1.0, 2.0]), expected, precision="float64", rtol=1e-12, atol=None
    )
    f32 = np.finfo(np.float32)
    # float32's largest value and an infinity, where the exact value overflows float32
    beyond = np.array([np.finfo(np.float64).max, 1e39, -1e39])
    got = np.array([f32.max, np.inf, -f32.max], dtype=np.float32)
    assert not compare(got, beyond, precision="float32", rtol=1e-5, atol=None)
    assert compare(-got, beyond, precision="float32", rtol=1e-5, atol=None)
    # subnormal results keep few digits; below float32's smallest normal number they pass
    tiny = np.array([2.0**-140, 3.0 * 2.0**-149, 0.0])
    assert not compare(tiny.astype(np.float32), tiny, precision="float32", rtol=1e-5, atol=None)
    assert not compare(
        np.array([np.nan, np.inf]), np.array([np.nan, np.inf]), precision="float64", rtol=0, atol=0
    )
    assert compare(
        np.array([True, True]), np.array([True, False]), precision="float64", rtol=1, atol=1
    )


def log_sigmoid(x: Any) -> Any:
    xp = array_api_compat.array_namespace(x)
    return -xp.logaddexp(xp.zeros_like(x), -x)


def test_gradients_hold_a_float64_log_sigmoid_to_float64_accuracy() -> None:
    x = np.linspace(-30.0, 30.0, 7)
    # np.logaddexp takes no complex input: the reference's side is Richardson-extrapolated.
    testing.check_function(
        log_sigmoid, x, reference=lambda x: -np.logaddexp(0, -x), grad=True,
        variants=["jax", "torch"],
    )  # fmt: skip

    def wrong_derivative(w: np.ndarray, x: np.ndarray) -> np.ndarray:
        return w / (1 + np.exp(x))  # the derivative is 1 / (1 + exp(x)): w is the weight

    testing.check_function(
        log_sigmoid, x, reference=lambda x: -np.logaddexp(0, -x), grad=True,
        reference_vjp=wrong_derivative, variants=["numpy"],
    )  # fmt: skip
    text = message(
        log_sigmoid, x, ["torch"], ref=lambda x: -np.logaddexp(0, -x), grad=True,
        reference_vjp=lambda w, x: 2 * w / (1 + np.exp(x)),
    )  # fmt: skip
    assert (
        "torch: gradients: d sum(w * fn) / d x (position 0) disagrees with the reference_vjp"
        in text
    )


def test_device1_finds_what_only_a_gpu_would() -> None:
    if not DEVICE1.available:
        pytest.skip(str(DEVICE1.unavailable_reason()))

    def through_numpy(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.asarray(np.exp(np.asarray(x)))

    text = message(through_numpy, X, ["array_api_strict", "array_api_strict:device1"], ref=np.exp)
    line = through_numpy.__code__.co_firstlineno + 2
    assert text.splitlines()[1:] == [
        (
            "array_api_strict:device1: devices: fn fails on device1 but runs on cpu: RuntimeError: "
            "Can't convert array on the 'array_api_strict.Device('device1')' device to a NumPy "
            f"array. (at tests/test_testing_toolkit.py:{line} in through_numpy)"
        )
    ]

    def ones_like_by_shape(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.ones(x.shape, dtype=x.dtype)

    text = message(ones_like_by_shape, X, CHEAP, ref=np.ones_like)
    assert text.splitlines()[1:] == [
        "array_api_strict:device1: devices: result is on cpu, the input on device1"
    ]


def test_framework_notices_are_forgiven_and_the_users_own_warnings_are_not() -> None:
    @functools.lru_cache
    def halving() -> float:
        return 0.5

    def with_a_cached_helper(x: Any) -> Any:
        return x * halving()  # torch.compile: Dynamo's notice about the lru_cache, forgiven

    testing.check_function(
        with_a_cached_helper, X, reference=lambda x: x * 0.5, variants=["torch.compile"]
    )
    assert all(w.reason for w in testing.forgiven_warnings())

    def claims_to_be_dynamo(x: Any) -> Any:
        text = "Dynamo detected a call to a `functools.lru_cache`-wrapped function at 'here'"
        warnings.warn(text, UserWarning, stacklevel=1)
        return x

    assert failures(claims_to_be_dynamo, X, ["numpy"], ref=lambda x: x) == {"numpy": {"warnings"}}


@pytest.mark.slow
def test_verdicts_do_not_depend_on_earlier_checks() -> None:
    """More distinct functions differentiated under torch.compile than Dynamo's recompile limit
    (8 per code object) allows without forgetting earlier ones."""
    for power in range(1, 11):

        def power_of(x: Any, power: int = power) -> Any:
            return x**power

        testing.check_function(
            power_of, X, reference=lambda x, p=power: x**p, grad=True, variants=["torch.compile"]
        )


def test_policies_change_how_the_function_runs() -> None:
    def clipped_if_negative(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.maximum(x, 0.0) if bool(xp.any(x < 0)) else x

    def ref(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0.0)

    assert failures(clipped_if_negative, X, ["dask"], ref=ref) == {"dask": {"laziness"}}
    testing.check_function(
        clipped_if_negative, X, reference=ref, variants=["dask"], allow_dask_compute=1
    )

    def tempered(x: Any, temperature: float) -> Any:
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        return x / temperature

    def tempered_ref(x: np.ndarray, temperature: float) -> np.ndarray:
        return x / temperature

    testing.check_function(
        tempered, X, reference=tempered_ref, variants=["jax.jit"], temperature=2.0
    )
    found = failures(
        tempered, X, ["jax.jit"], ref=tempered_ref, static_argnames=(), temperature=2.0
    )
    assert found == {"jax.jit": {"laziness"}}

    def chunked(x: Any) -> Any:
        assert array_api_compat.is_dask_array(x)
        assert (len(x.chunks[0]), len(x.chunks[1])) == (2, 3), x.chunks
        return x + 1.0

    testing.check_function(
        chunked, X, reference=lambda x: x + 1.0, variants=["dask"], dask_chunks="several"
    )


def test_skip_and_xfail_silence_named_findings_but_not_their_absence() -> None:
    def in_place(x: Any) -> Any:
        x += 1.0
        return x

    def ref(x: np.ndarray) -> np.ndarray:
        return x + 1.0

    testing.check_function(in_place, X, reference=ref, variants=["numpy"], skip=["mutation"])
    testing.check_function(
        in_place, X, reference=ref, variants=["numpy", "jax"], skip=["numpy: mutation"]
    )
    testing.check_function(
        in_place, X, reference=ref, variants=["numpy"], xfail={"numpy: mutation": "known, #12"}
    )
    text = message(in_place, X, ["numpy", "jax"], ref=ref, xfail={"jax: mutation": "never"})
    assert text.splitlines()[1:] == [
        "numpy: mutation: fn modified its argument x (position 0) in place",
        "jax: mutation: expected to fail (never) but passed",
    ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"skip": ["colour"]}, "skip: unknown check 'colour'"),
        ({"skip": ["tensorflow: values"]}, "skip: unknown variant 'tensorflow'"),
        ({"skip": ["numpy"]}, "skip: 'numpy' names no check"),
        ({"xfail": {"values": "why"}}, "xfail: 'values' must name a variant"),
        ({"xfail": {"numpy: values": ""}}, "xfail: 'numpy: values' needs a reason"),
        ({"allow_dask_compute": -1}, "allow_dask_compute must be True, False or a count >= 0"),
        ({"rtol": -1.0}, "rtol must be a number >= 0 or None"),
        ({"fullgraph": "yes"}, "fullgraph must be True or False"),
        ({"variants": ["tensorflow"]}, "unknown variant 'tensorflow'; known: \\['numpy'"),
    ],
)
def test_bad_options_are_refused_naming_the_option(options: dict[str, Any], error: str) -> None:
    with pytest.raises((TypeError, ValueError), match=error):
        testing.check_function(scaled_exp, X, reference=reference, **options)


def test_a_reference_that_raises_is_refused() -> None:
    with pytest.raises(ValueError, match="reference raised ZeroDivisionError"):
        testing.check_function(scaled_exp, X, reference=lambda x: 1 / 0, variants=["numpy"])


PYTEST_FILE = """
import numpy as np
import pytest
from xpsoftmax import testing

pytest_plugins = ["xpsoftmax.testing.pytest_plugin"]


@pytest.mark.skip_variants("dask", "jax", reason="not for these")
@pytest.mark.xfail_variants("numpy", reason="numpy is named here")
def test_marked(xp_variant):
    assert xp_variant.name != "numpy"


def test_a_bug(xp_variant):
    pass


def test_logged_nothing():
    compiled = next(v for v in testing.variants() if v.name == "torch.compile")
    compiled.call(lambda x: x * 2, compiled.asarray(np.ones(2)))
    assert False, "a failure after a compile"


def test_verdict():
    def doubled_in_place(x):
        x *= 2
        return x

    testing.check_function(doubled_in_place, np.ones(2), reference=lambda x: 2 * x, variants=["numpy"])
"""


def test_under_pytest_markers_apply_and_a_failure_shows_the_verdict_not_the_toolkit(
    tmp_path: Path,
) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["xpsoftmax.testing.pytest_plugin"]\n')
    (tmp_path / "test_user.py").write_text(PYTEST_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rsx", "-p", "no:cacheprovider", "--strict-markers",
         "-W", "error", "-k", "numpy or dask or verdict or logged", str(tmp_path / "test_user.py")],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = done.stdout
    assert "XFAIL test_user.py::test_marked[numpy] - numpy is named here" in out, out
    assert re.search(r"SKIPPED \[1\] test_user.py:\d+: not for these", out), out
    assert "E       AssertionError: check_function(doubled_in_place) failed:" in out
    assert "E       numpy: mutation: fn modified its argument x (position 0) in place" in out
    assert "def check_function(" not in out
    assert "Parameters" not in out
    assert "Captured log" not in out  # a compile logs nothing into pytest's capture
    assert re.search(r"2 failed, 2 passed, 1 skipped, \d+ deselected, 1 xfailed", out), out


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


def test_benchmark_times_any_result() -> None:
    def total(x: Any) -> float:
        return float(array_api_compat.array_namespace(x).sum(x))

    table = testing.benchmark(total, X, peer=lambda x: x, variants=["numpy", "torch"], rounds=1)
    assert [row.variant for row in table.rows] == ["numpy", "torch"]
    assert all(row.seconds > 0 for row in table.rows)


TORCH_GPU = [v for v in testing.variants(include_missing=True) if v.name.endswith(":cuda")]


@pytest.mark.gpu
@pytest.mark.parametrize("v", variant_params(TORCH_GPU))
def test_gpu_variants_check_devices_too(v: backends.Variant) -> None:
    """torch.ones without device= makes a CPU tensor, whatever device the input is on."""

    def ones_like_by_shape(x: Any) -> Any:
        xp = array_api_compat.array_namespace(x)
        return xp.ones(x.shape, dtype=x.dtype)

    text = message(ones_like_by_shape, X, [v.name], ref=np.ones_like)
    assert f"{v.name}: devices: " in text
