"""Fixtures and helpers shared by the core test matrix.

Everything the tests know about backends comes from the toolkit we offer library authors,
`xpsoftmax.testing` (over the `xpsoftmax.backends` registry): the `variant` fixture runs over its
variants (`xpsoftmax.testing.variants`), parametrised by its pytest plugin's `variant_params`
(skipping, with the reason, those this machine cannot run, such as GPU variants without a GPU),
and `call` runs a function in a variant's mode with `Variant.call`, as `check_function` does. So
what we test and what we offer cannot drift apart. Expected values come from the mpmath oracle (`xpsoftmax.testing.oracle`),
fed the inputs exactly as the backend saw them, i.e. rounded to the test dtype.

Error bounds, in units of the test dtype's epsilon, come from `xpsoftmax.testing.bounds` (the
module `xpsoftmax compare` uses too), whose docstring derives each one (spec: Accuracy).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from xpsoftmax.testing import oracle
from xpsoftmax.testing.bounds import normalise_axes, scaled_ulp_error
from xpsoftmax.testing.pytest_plugin import variant_params

import xpsoftmax
from xpsoftmax import backends, testing

# Two xdist workers share two cores: inductor's pool of compile subprocesses (one per core, in
# each worker) would only oversubscribe them, so it compiles in the worker itself. Read when
# torch._inductor's config is first imported (nothing above imports it; torch itself may be),
# and inherited by the tests' own subprocesses.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

#: The dtype the library computes in for each input dtype.
COMPUTE_DTYPE = {
    "float16": "float32",
    "bfloat16": "float32",
    "float32": "float32",
    "float64": "float64",
}

REDUCING = ("softmax", "log_softmax", "logsumexp")
JACOBIANS = ("softmax_jacobian", "log_softmax_jacobian")
PRODUCTS = ("softmax_jvp", "softmax_vjp", "log_softmax_jvp", "log_softmax_vjp")
FUNCTIONS = (*REDUCING, *JACOBIANS, *PRODUCTS, "cross_entropy")


# Test ids are the variants' names ("jax.jit"), as users' tests see them.
MATRIX = testing.variants(include_missing=True)
ALL_VARIANTS = variant_params(MATRIX)
EAGER_VARIANTS = variant_params([v for v in MATRIX if not v.compiled])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the cells of the matrix that do not exist, rather than skip them: a dtype the
    backend lacks (NumPy has no bfloat16), and on compiled variants the dtypes a test's
    ``compiled_dtypes`` marker does not name (each compilation costs seconds). Then put the
    tests marked slow first."""
    kept, left_out = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params else {}
        v = next((p for p in params.values() if isinstance(p, backends.Variant)), None)
        dtype = params.get("dtype")
        marker = item.get_closest_marker("compiled_dtypes")
        exists = v is None or dtype is None or _has_dtype(v, dtype)
        if exists and v is not None and v.compiled and marker is not None:
            exists = dtype in marker.args
        (kept if exists else left_out).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
    # The long tests first (a stable sort): started early, they run beside the many short ones,
    # and no worker is left with one at the end while the others wait.
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("slow") is None)


def _has_dtype(v: backends.Variant, dtype: str) -> bool:
    return dtype not in backends.FLOAT_DTYPES or dtype in v.backend.float_dtypes


@pytest.fixture(scope="session", autouse=True)
def _torch_seen_eagerly() -> None:
    """One eager PyTorch call before any compiled one, in every test process.

    The first compiled call of a process that imported torch after xpsoftmax, with no eager call
    before, makes TorchDynamo warn about array-api-compat's cached helpers (a documented
    limitation, which tests/test_quiet_compile.py runs in a fresh interpreter); the test
    processes import xpsoftmax first, and which test comes first in each is left to xdist.
    """
    if importlib.util.find_spec("torch") is None:
        return
    import torch

    xpsoftmax.softmax(torch.zeros(2, 3))


@pytest.fixture(params=ALL_VARIANTS)
def variant(request: pytest.FixtureRequest) -> backends.Variant:
    """Every backend variant (eager and compiled); unavailable ones skip with their reason."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=EAGER_VARIANTS)
def eager_variant(request: pytest.FixtureRequest) -> backends.Variant:
    """Every eager backend variant."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded by the test id, so that every test sees its own fixed data."""
    # crc32, not hash(): str hashes change from process to process.
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def _raise_torch_recompile_limit() -> None:
    """The matrix calls each compiled closure code object with many shapes and arguments; dynamo's
    default limit of 8 compilations per code object would otherwise fall back to eager silently."""
    import torch

    torch._dynamo.config.recompile_limit = 256
    torch._dynamo.config.accumulated_recompile_limit = 4096


def call(
    v: backends.Variant,
    fn: Callable[..., Any] | str,
    *arrays: Any,
    array_kwargs: dict[str, Any] | None = None,
    **static: Any,
) -> Any:
    """Run public function `fn` on `v` with `Variant.call` (compiled for compiled variants, with
    `static` (axis, ...) closed over so that jit sees them as constants and the arrays as traced
    arguments); array keyword arguments that are None are left out."""
    if isinstance(fn, str):
        fn = getattr(xpsoftmax, fn)
    array_kwargs = {k: a for k, a in (array_kwargs or {}).items() if a is not None}
    if v.compiled and v.backend.name == "torch":
        _raise_torch_recompile_limit()
    return v.call(fn, *arrays, **array_kwargs, **static)


def dtype_name(a: Any) -> str:
    """The dtype of a framework array as a plain name ("float32", "bfloat16", ...)."""
    return str(a.dtype).rpartition(".")[2]


# -- inputs ------------------------------------------------------------------------------------------


def temperature_for(
    kind: Any, shape: tuple[int, ...], axis: Any, dtype: str, rng: np.random.Generator
) -> tuple[Any, Any]:
    """(temperature as the library gets it, as the backend sees it) for a kind: a number or
    "array" (one value per slice, the reduced axes kept with length 1)."""
    compute = COMPUTE_DTYPE[dtype]
    if kind != "array":
        # A Python float meets the input in its compute dtype (weak scalar promotion).
        return float(kind), oracle.round_to(kind, compute)
    axes = normalise_axes(axis, len(shape))
    t_shape = tuple(1 if a in axes else n for a, n in enumerate(shape))
    t = oracle.round_to(rng.uniform(0.3, 3.0, size=t_shape), dtype)
    return t, t


def mask_for(kind: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray | None:
    return None if kind is None else rng.random(shape) < 0.7


# -- measuring ---------------------------------------------------------------------------------------


def assert_within(
    result: np.ndarray, exact: Any, dtype: str, bound: Any, scale: Any = None, what: str = ""
) -> float:
    """Assert the error of `result` is within `bound` eps everywhere; returns the largest error."""
    exact = np.asarray(exact, dtype=object)
    assert result.shape == exact.shape, f"{what}: shape {result.shape} != {exact.shape}"
    err = scaled_ulp_error(result, exact, dtype, scale)
    excess = err - np.broadcast_to(bound, err.shape)
    if err.size and not np.all(excess <= 0):
        worst = np.unravel_index(np.argmax(excess), err.shape)
        raise AssertionError(
            f"{what}: error {err[worst]:.3g} eps > bound {np.broadcast_to(bound, err.shape)[worst]:.3g}"
            f" at {worst}: got {result[worst]!r}, exact {float(exact[worst])!r}"
        )
    return float(err.max()) if err.size else 0.0


def load_module(name: str, path: Path) -> Any:
    """The Python file at `path` (a script or a benchmark module, not a package), imported once
    under `name`."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


ROOT = Path(__file__).resolve().parents[1]


def run_python(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh interpreter (this one's executable), its output captured as
    text: how the tests run a command as its users do, or code that needs a process of its own."""
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mesh_axis_types() -> tuple[str, ...]:
    """The kinds of mesh axis the installed JAX offers: ``Explicit`` (`jax.make_mesh`'s default
    since JAX gave axes kinds) and ``Auto`` (XLA chooses the layouts: every older mesh)."""
    import jax

    return ("Explicit", "Auto") if hasattr(jax.sharding, "AxisType") else ("Auto",)


def skip_unless_jax_has(axis_type: str) -> None:
    """Skip a case of an ``Explicit`` mesh where the installed JAX has no kinds of axis."""
    import jax

    if axis_type not in mesh_axis_types():
        pytest.skip(f"JAX {jax.__version__} has no {axis_type} mesh axes (jax.sharding.AxisType)")


#: Source of ``mesh_of(shape, names, axis_type)`` for the scripts `run_with_host_devices` runs: a
#: mesh of the named kind of axis, on any JAX the jax extra admits.
MESH_SOURCE = """
def mesh_of(shape, names, axis_type):
    if not hasattr(jax.sharding, "AxisType"):
        return jax.make_mesh(shape, names)
    kind = getattr(jax.sharding.AxisType, axis_type)
    return jax.make_mesh(shape, names, axis_types=(kind,) * len(shape))
"""


def run_with_host_devices(script: str, *args: str, devices: int = 4) -> str:
    """Run a Python `script` in a fresh interpreter whose JAX sees `devices` CPU devices (XLA
    fixes the count when it starts, so it cannot be changed in this process); its stdout."""
    env = dict(os.environ)
    flags = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    env["XLA_FLAGS"] = flags.strip()
    env["JAX_PLATFORMS"] = "cpu"
    done = run_python("-c", script, *args, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


@contextlib.contextmanager
def two_workers(**options: Any) -> Iterator[Any]:
    """A client of a real `distributed.LocalCluster` of two single-threaded worker processes
    (`options` go to LocalCluster too: a memory limit, a local directory). The dashboard, and
    the scheduler's HTTP server, on a free port: the default 8787 may be taken by another
    cluster of the same test run, and distributed then warns."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", **options
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
