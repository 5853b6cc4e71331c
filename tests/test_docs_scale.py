"""The examples of docs/scale.rst, run in a fresh interpreter with four JAX devices.

``tests/test_docs.py`` runs every page in the test process, where JAX has already started with
one CPU device, so there the sharding examples shard over a mesh of one. Here the page runs
again as a reader would run it with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
the arrays are really split over four devices, and the Dask examples start their own cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parent.parent / "docs" / "scale.rst"

RUN_PAGE = textwrap.dedent(
    """
    import doctest
    import json
    import sys

    result = doctest.testfile(
        sys.argv[1],
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    import jax

    print(json.dumps({
        "failed": result.failed,
        "attempted": result.attempted,
        "devices": len(jax.devices()),
    }))
    """
)


@pytest.mark.slow
def test_scale_page_runs_on_four_devices() -> None:
    env = dict(os.environ)
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run(
        [sys.executable, "-c", RUN_PAGE, str(PAGE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # doctest prints each failing example before the summary line we print last.
    *failures, summary = done.stdout.strip().splitlines()
    report = json.loads(summary)
    assert report["failed"] == 0, "\n".join(failures)
    assert report["attempted"] >= 30
    assert report["devices"] == 4
