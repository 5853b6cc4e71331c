"""JAX: the functions on arrays sharded over a device mesh of four (host) devices.

XLA reads ``XLA_FLAGS`` once, when JAX first starts a backend, and the rest of the suite has
long since imported JAX with one CPU device in this process. So the checks run in a fresh
interpreter with ``--xla_force_host_platform_device_count=4``; it reports one JSON record per
case, which the tests below assert on.

For every layout (batch axis sharded, softmax axis sharded, both over a 2 x 2 mesh) and both
kinds of mesh axis (``Explicit``, `jax.make_mesh`'s default, and ``Auto``; ``Auto`` alone before
JAX had kinds of axis), each function runs
eagerly, under ``jax.jit`` and as the gradient of its sum (``jax.jit(jax.grad(...))``, through
the closed-form derivative rules), and must give

* the values of JAX's own function (``jax.nn``) on the unsharded array, and our own unsharded
  result (a sharded reduction may add in another order, hence a tolerance of a few ulps);
* an output with the sharding JAX's own function gives on the same sharded input: sharded
  along the batch where the input was, and never gathered onto one device.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from conftest import MESH_SOURCE, mesh_axis_types, run_with_host_devices

DEVICES = 4
FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")
LAYOUTS = ("batch", "classes", "both")
MODES = ("eager", "jit", "grad")

CHECKS = MESH_SOURCE + textwrap.dedent(
    """
    import json
    import sys

    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    import xpsoftmax

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(scale=3.0, size=(8, 16)), dtype=jnp.float32)
    target = jnp.asarray(rng.integers(0, 16, size=8))

    def theirs_cross_entropy(x, t):
        # A one-hot product rather than take_along_axis: a gather along a sharded class
        # axis needs an explicit out_sharding under Explicit mesh axes.
        one_hot = jax.nn.one_hot(t, x.shape[-1], dtype=x.dtype)
        return -jnp.sum(one_hot * jax.nn.log_softmax(x, axis=-1), axis=-1)

    OURS = {
        "softmax": lambda x, t: xpsoftmax.softmax(x),
        "log_softmax": lambda x, t: xpsoftmax.log_softmax(x),
        "logsumexp": lambda x, t: xpsoftmax.logsumexp(x),
        "cross_entropy": lambda x, t: xpsoftmax.cross_entropy(x, t, reduction="none"),
    }
    THEIRS = {
        "softmax": lambda x, t: jax.nn.softmax(x, axis=-1),
        "log_softmax": lambda x, t: jax.nn.log_softmax(x, axis=-1),
        "logsumexp": lambda x, t: jax.nn.logsumexp(x, axis=-1),
        "cross_entropy": theirs_cross_entropy,
    }

    def gradient(fn):
        return jax.jit(jax.grad(lambda x, t: fn(x, t).sum()))

    UNSHARDED = {
        (name, mode): (
            (gradient(OURS[name]) if mode == "grad" else OURS[name])(logits, target),
            (gradient(THEIRS[name]) if mode == "grad" else THEIRS[name])(logits, target),
        )
        for name in OURS
        for mode in ("eager", "jit", "grad")
    }

    def describe(a):
        s = a.sharding
        spec = getattr(s, "spec", None)
        return {
            "spec": None if spec is None else str(spec),
            "devices": len(s.device_set),
            "replicated": bool(s.is_fully_replicated),
        }

    def max_ulps(a, b):
        eps = float(jnp.finfo(jnp.float32).eps)
        scale = np.maximum(np.abs(np.asarray(b)), 1.0)
        return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / scale) / eps)

    records = []
    for axis_type in sys.argv[1:]:
        mesh_1d = mesh_of((4,), ("d",), axis_type)
        mesh_2d = mesh_of((2, 2), ("b", "c"), axis_type)
        layouts = {
            "batch": (mesh_1d, P("d", None), P("d")),
            "classes": (mesh_1d, P(None, "d"), P()),
            "both": (mesh_2d, P("b", "c"), P("b")),
        }
        for layout, (mesh, spec, target_spec) in layouts.items():
            x = jax.device_put(logits, NamedSharding(mesh, spec))
            t = jax.device_put(target, NamedSharding(mesh, target_spec))
            for name in OURS:
                for mode in ("eager", "jit", "grad"):
                    unsharded, reference = UNSHARDED[name, mode]
                    if mode == "grad":  # the closed-form derivative rules, sharded
                        fn, theirs_sharded = gradient(OURS[name]), gradient(THEIRS[name])(x, t)
                    else:
                        fn = OURS[name] if mode == "eager" else jax.jit(OURS[name])
                        theirs_sharded = THEIRS[name](x, t)
                    out = fn(x, t)
                    records.append({
                        "axis_type": axis_type, "layout": layout, "function": name,
                        "mode": mode, "input": describe(x), "output": describe(out),
                        "theirs": describe(theirs_sharded),
                        "ulps_vs_jax": max_ulps(out, reference),
                        "ulps_vs_unsharded": max_ulps(out, unsharded),
                        "shape": list(out.shape), "expected_shape": list(reference.shape),
                    })
    json.dump(records, sys.stdout)
    """
)


def _run_checks() -> list[dict[str, Any]]:
    """Run the checks in a fresh interpreter with four host devices; one record per case."""
    records = run_with_host_devices(CHECKS, *mesh_axis_types(), devices=DEVICES)
    return json.loads(records)  # type: ignore[no-any-return]


def _problems(r: dict[str, Any]) -> list[str]:
    """What is wrong with one case, in words (nothing when it passes)."""
    found = []
    if r["input"]["devices"] != DEVICES or r["input"]["replicated"]:
        found.append(f"the input was not sharded: {r['input']}")
    if r["shape"] != r["expected_shape"]:
        found.append(f"shape {r['shape']} != {r['expected_shape']}")
    # float32 values against JAX's own function and against the unsharded call.
    if not r["ulps_vs_jax"] <= 8.0:
        found.append(f"{r['ulps_vs_jax']:.3g} ulps from jax.nn")
    if not r["ulps_vs_unsharded"] <= 8.0:
        found.append(f"{r['ulps_vs_unsharded']:.3g} ulps from the unsharded call")
    # The output lives on the whole mesh, laid out as JAX lays out its own result.
    if r["output"] != r["theirs"]:
        found.append(f"output sharding {r['output']} != jax.nn's {r['theirs']}")
    keeps_classes = r["function"] in ("softmax", "log_softmax") or r["mode"] == "grad"
    still_sharded = r["layout"] != "classes" or keeps_classes
    if still_sharded and r["output"]["replicated"]:
        found.append("the output was gathered, not sharded")
    return found


@pytest.mark.slow
def test_sharded_inputs_give_jax_values_and_layouts() -> None:
    """Every axis type x layout x function x mode (one subprocess: JAX starts once)."""
    records = _run_checks()
    cases = {(r["axis_type"], r["layout"], r["function"], r["mode"]) for r in records}
    expected = {
        (a, lay, f, m)
        for a in mesh_axis_types()
        for lay in LAYOUTS
        for f in FUNCTIONS
        for m in MODES
    }
    assert cases == expected
    failures = [
        f"{'/'.join(case)}: {p}"
        for r in records
        for p in _problems(r)
        for case in [(r["axis_type"], r["layout"], r["function"], r["mode"])]
    ]
    assert not failures, "\n".join(failures)
