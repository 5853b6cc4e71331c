"""A library older than the lower bound pyproject.toml states for it: an error that names it.

The bounds are read by the library from its installed metadata with a small parser of its own
(it has no version parser among its dependencies); here they are read from pyproject.toml with
`packaging`, pip's own parser, and the installed versions are made older by patching
``importlib.metadata.version`` in a fresh interpreter.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import sys

import pytest
from conftest import ROOT
from packaging.version import Version
from version_bounds import declared_bounds, lowest_bounds

from xpsoftmax._platform import versions


def test_the_library_reads_the_bounds_pip_reads() -> None:
    expected = lowest_bounds(importlib.metadata.requires("xpsoftmax") or [])
    found = {name: Version(v) for name, v in versions._lower_bounds().items()}
    assert found == expected
    for framework in ("numpy", "array-api-compat", "jax", "torch", "dask", "array-api-strict"):
        assert framework in found


def test_an_extra_for_a_capability_has_a_bound_of_its_own() -> None:
    own = {name: Version(v) for name, v in versions._lower_bounds("transposed-maps").items()}
    assert own == declared_bounds("transposed-maps")
    assert own["jax"] > declared_bounds()["jax"]


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("0.4.30", "0.4.33"),
        ("1.26", "1.26.1"),
        ("2.3", "2.13.0+cpu"),
        ("2024.8.0", "2024.8.1"),
        ("2.2", "2.3"),
        ("1.9", "1.15"),
    ],
)
def test_release_order_agrees_with_packaging(older: str, newer: str) -> None:
    assert Version(older) < Version(newer)
    assert versions._release(older) < versions._release(newer)


@pytest.mark.parametrize(("a", "b"), [("1.26", "1.26.0"), ("2.13.0+cpu", "2.13"), ("2.3", "2.3.0")])
def test_equal_releases_are_equal(a: str, b: str) -> None:
    assert Version(Version(a).public) == Version(b)
    assert versions._release(a) == versions._release(b)


def test_packages_without_a_bound_pass() -> None:
    # jaxlib defines JAX's concrete arrays; the bound is on jax, whose namespace is checked.
    versions.require_supported("jaxlib.xla_extension")
    versions.require_supported("xpsoftmax_no_such_package")


# One fresh interpreter: each library reports version 0.1 (its metadata patched), and the first
# call with its arrays, eager or traced, must raise.
SCRIPT = r"""
import importlib.metadata, json, sys
real_version = importlib.metadata.version
OLD = set(sys.argv[1].split(","))
def version(name):
    return "0.1" if name in OLD else real_version(name)
importlib.metadata.version = version

import numpy as np
import xpsoftmax

def make(case):
    if case == "numpy":
        return np.zeros(3)
    if case == "array-api-strict":
        import array_api_strict
        return array_api_strict.zeros(3)
    if case in ("jax", "jax-jit"):
        import jax.numpy as jnp
        return jnp.zeros(3)
    if case == "torch":
        import torch
        return torch.zeros(3)
    if case == "dask":
        import dask.array as da
        return da.zeros(3, chunks=2)

messages = {}
for case in sys.argv[2].split(","):
    call = xpsoftmax.softmax
    if case == "jax-jit":
        import jax
        call = jax.jit(xpsoftmax.softmax)
    try:
        call(make(case))
        messages[case] = None
    except ImportError as error:
        messages[case] = str(error)
print(json.dumps(messages))
"""

CASES = {  # the case: the package whose version is made older
    "numpy": "numpy",
    "array-api-strict": "array-api-strict",
    "jax-jit": "jax",  # a traced array first: the lookup of its namespace is what fails
    "torch": "torch",
    "dask": "dask",
}


def test_an_older_library_is_an_error_naming_it_and_both_versions() -> None:
    packages = sorted(set(CASES.values()))
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(packages), ",".join(CASES)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    messages = json.loads(done.stdout.strip().splitlines()[-1])
    bounds = declared_bounds()
    for case, package in CASES.items():
        message = messages[case]
        assert message is not None, f"{case}: no error for {package} 0.1"
        assert f"needs {package} >= {bounds[package]}," in message, message
        assert f"{package} 0.1 is installed" in message, message


def test_array_api_compat_is_checked_through_the_namespaces_it_wraps() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, "array-api-compat", "numpy"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    message = json.loads(done.stdout.strip().splitlines()[-1])["numpy"]
    assert message is not None
    assert "array-api-compat 0.1 is installed" in message
    assert f"needs array-api-compat >= {declared_bounds()['array-api-compat']}," in message


# The derivatives of linear_cross_entropy's loss per token on a JAX below the transposed-maps
# bound (its version patched), and its value, which needs no more than the [jax] extra's bound.
LINEAR_SCRIPT = r"""
import importlib.metadata, sys
real_version = importlib.metadata.version
importlib.metadata.version = lambda name: sys.argv[1] if name == "jax" else real_version(name)

import jax, jax.numpy as jnp
import xpsoftmax

hidden, weight, target = jnp.ones((4, 3)), jnp.ones((5, 3)), jnp.asarray([0, 1, 2, 3])
print(float(jnp.sum(xpsoftmax.linear_cross_entropy(hidden, weight, target))))
try:
    per_token = lambda h: xpsoftmax.linear_cross_entropy(h, weight, target, reduction="none")
    jax.grad(lambda h: jnp.sum(per_token(h)))(hidden)
    print("no error")
except ImportError as error:
    print(error)
"""


def test_a_capability_newer_than_the_extra_is_an_error_naming_both_versions() -> None:
    pytest.importorskip("jax")
    older, needed = declared_bounds("jax")["jax"], declared_bounds("transposed-maps")["jax"]
    assert older < needed
    done = subprocess.run(
        [sys.executable, "-c", LINEAR_SCRIPT, str(older)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    value, message = done.stdout.strip().splitlines()[-2:]
    assert float(value) == pytest.approx(math.log(5))  # equal logits: the mean of log(classes)
    assert message.startswith(
        "the derivatives of linear_cross_entropy's loss per token (reduction='none'): "
        "xpsoftmax needs"
    ), message
    assert f"needs jax >= {needed}, the version needed, but jax {older} is installed" in message
    assert "xpsoftmax[transposed-maps]" in message


def test_ci_pins_every_bound_of_the_extras_it_installs() -> None:
    """.ci/lower_bounds.py, as .ci/run calls it: one ``==`` pin per package, at the highest
    bound the extras named set for it (the oldest version all of them admit)."""
    import tomllib  # (Python 3.11 on, as CI runs)

    extras = ["jax", "torch", "dask", "strict", "test", "cli"]
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "lower_bounds.py"), *extras, "--except", "torch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pins = dict(line.split("==") for line in done.stdout.split())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    expected: dict[str, Version] = {}
    for line in [
        *project["dependencies"],
        *(r for e in extras for r in project["optional-dependencies"][e]),
    ]:
        for name, bound in lowest_bounds([line]).items():
            expected[name] = max(expected.get(name, bound), bound)
    del expected["torch"]
    assert {name: Version(v) for name, v in pins.items()} == expected
    assert pins["jax"] == str(declared_bounds("jax")["jax"])  # not the transposed-maps bound
