"""The examples of docs/scale.rst, run in a fresh interpreter with four JAX devices.

``tests/test_docs.py`` runs every page in the test process, where JAX has already started with
one CPU device, so there the sharding examples shard over a mesh of one. Here the page runs
again as a reader would run it with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``:
the arrays are really split over four devices, and the Dask examples start their own cluster.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import run_with_host_devices

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
    stdout = run_with_host_devices(RUN_PAGE, str(PAGE))
    # doctest prints each failing example before the summary line we print last.
    *failures, summary = stdout.strip().splitlines()
    report = json.loads(summary)
    assert report["failed"] == 0, "\n".join(failures)
    assert report["attempted"] >= 30
    assert report["devices"] == 4
