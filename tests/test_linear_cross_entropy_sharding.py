"""JAX: linear_cross_entropy with hidden sharded over tokens and the weight over the vocabulary.

In a fresh interpreter with four host devices (``conftest.run_with_host_devices``: XLA fixes
the device count when it starts), ``jax.jit(jax.value_and_grad(...))`` of the mean loss, with
respect to hidden and the weight, on a 4-device mesh of Explicit or Auto axes (Auto alone
before JAX had kinds of axis; hidden ``P("d", None)``, weight ``P("d", None)``: rows of the
vocabulary split) must give the loss and gradients of the same call on unsharded arrays, and those of optax on the materialised logits, in float64; so must
the same call with the weight whole on every device; and the loss per token ("none", the rule
that keeps a logsumexp) weighted and summed. The mean and the sum compute their gradients in the
forward pass, a block of tokens at a time, each block's hidden rows gathered on every device and
its logits split by the vocabulary: no device holds a whole row of logits.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest
from conftest import MESH_SOURCE, run_with_host_devices, skip_unless_jax_has
from version_bounds import newer_needed

pytest.importorskip("optax")

CHECKS = MESH_SOURCE + textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax.sharding import NamedSharding, PartitionSpec as P

    import xpsoftmax

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    tokens, d, v = 64, 16, 1000
    hidden = jnp.asarray(rng.standard_normal((tokens, d)))
    weight = jnp.asarray(rng.standard_normal((v, d)) / 4.0)
    target = jnp.asarray(rng.integers(0, v, size=tokens))

    def ours(h, w, t):
        return xpsoftmax.linear_cross_entropy(h, w, t, chunk_size=int(sys.argv[1]) or None)

    def materialised(h, w, t):
        return optax.softmax_cross_entropy_with_integer_labels(h @ w.T, t).mean()

    step = jax.jit(jax.value_and_grad(ours, argnums=(0, 1)))
    unsharded = step(hidden, weight, target)
    reference = jax.jit(jax.value_and_grad(materialised, argnums=(0, 1)))(hidden, weight, target)
    devices = mesh_of((4,), ("d",), sys.argv[2])
    h_sharded = jax.device_put(hidden, NamedSharding(devices, P("d", None)))
    w_sharded = jax.device_put(weight, NamedSharding(devices, P("d", None)))
    t_sharded = jax.device_put(target, NamedSharding(devices, P("d")))
    sharded = step(h_sharded, w_sharded, t_sharded)
    w_whole = jax.device_put(weight, NamedSharding(devices, P()))
    tokens_only = step(h_sharded, w_whole, t_sharded)

    def flat(result):
        loss, (d_h, d_w) = result
        return [np.asarray(loss), np.asarray(d_h), np.asarray(d_w)]

    # Per token ("none"), the rule that keeps a logsumexp: weighted by fixed per-token weights.
    token_weights = jnp.asarray(rng.uniform(0.5, 1.5, size=tokens))

    def per_token(h, w, t):
        loss = xpsoftmax.linear_cross_entropy(
            h, w, t, reduction="none", chunk_size=int(sys.argv[1]) or None
        )
        return jnp.sum(loss * token_weights)

    def per_token_materialised(h, w, t):
        loss = optax.softmax_cross_entropy_with_integer_labels(h @ w.T, t)
        return jnp.sum(loss * token_weights)

    none_step = jax.jit(jax.value_and_grad(per_token, argnums=(0, 1)))
    none_reference = jax.jit(jax.value_and_grad(per_token_materialised, argnums=(0, 1)))
    none_expected = none_reference(hidden, weight, target)

    def relative(a, b):
        return [float(np.max(np.abs(x - y)) / np.max(np.abs(y))) for x, y in zip(a, b)]

    try:  # (before JAX 0.10 the per-token rule's derivative is our ImportError, naming it)
        none_vs, none_error = relative(
            flat(none_step(h_sharded, w_sharded, t_sharded)), flat(none_expected)
        ), None
    except ImportError as error:
        none_vs, none_error = None, str(error)

    json.dump({
        "inputs_sharded": [len(a.sharding.device_set) for a in (h_sharded, w_sharded)],
        "vs_unsharded": relative(flat(sharded), flat(unsharded)),
        "vs_materialised": relative(flat(sharded), flat(reference)),
        "tokens_only_vs_materialised": relative(flat(tokens_only), flat(reference)),
        "none_vs_materialised": none_vs,
        "none_error": none_error,
        "gradient_devices": [len(g.sharding.device_set) for g in sharded[1]],
    }, sys.stdout)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("axis_type", ["Explicit", "Auto"])
@pytest.mark.parametrize("chunk_size", [0, 22])
def test_sharded_over_tokens_and_vocabulary(chunk_size: int, axis_type: str) -> None:
    """chunk_size 0: the rule from the shapes; 22: blocks larger than a device's 16 tokens,
    taken as 6 tokens of each device's piece, the last run padded.
    Explicit mesh axes are `jax.make_mesh`'s default; Auto ones leave the layout to XLA."""
    skip_unless_jax_has(axis_type)
    record = json.loads(run_with_host_devices(CHECKS, str(chunk_size), axis_type, devices=4))
    assert record["inputs_sharded"] == [4, 4]
    # The same float64 sums in another order: a few ulps.
    assert max(record["vs_unsharded"]) < 1e-13, record
    assert max(record["vs_materialised"]) < 1e-13, record
    assert max(record["tokens_only_vs_materialised"]) < 1e-13, record
    older = newer_needed("transposed-maps", "jax")
    if older is not None:
        assert re.search(older, record["none_error"]), record
    else:
        assert max(record["none_vs_materialised"]) < 1e-13, record
