"""The regression gate: has xpsoftmax got slower *relative to each framework's own kernel*?

pytest-benchmark's own ``--benchmark-compare-fail`` compares absolute times, which only mean
something between runs on one machine; a CI runner is a different virtual machine each time,
often busier or quieter by tens of percent. Every headline case is timed beside its peer in the
same run, so this gate compares their ratio (xpsoftmax's time / the peer's), in which the
machine's speed cancels, with the ratio in a baseline::

    python -m pytest tests/benchmarks/test_headline.py --benchmark-enable --benchmark-only \\
        --benchmark-json=headline.json
    python tests/benchmarks/gate.py headline.json --baseline tests/benchmarks/headline_baseline.json

The baseline is either another pytest-benchmark JSON file (a run of main, cached by CI) or the
ratios alone (``--write-ratios``), as committed in ``headline_baseline.json``. Exit status 1
when a ratio grew by more than ``--max-increase``; cases only one side has are listed, not failed.

The default threshold, a doubled ratio, is for shared machines: on the 2-core machine the
baseline was measured on, with a load average of 14, unchanged code moved single ratios by up
to +91% (the median case by about 10%). On a quiet, dedicated runner 0.25 is realistic.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: pytest-benchmark statistics one can gate on; the minimum is the least disturbed by a busy
#: machine (noise only ever adds time).
STATS = ("min", "median", "mean")


def ratios(results: dict[str, Any], stat: str = "min") -> dict[str, float]:
    """xpsoftmax's time / the peer's, per benchmark group, from a pytest-benchmark JSON dict.

    A file of ratios alone (``{"ratios": {...}}``, what ``--write-ratios`` writes) is returned
    as it is, so either kind can serve as the baseline.

    Examples
    --------
    >>> run = {"benchmarks": [
    ...     {"group": "softmax-numpy", "extra_info": {"implementation": "xpsoftmax"},
    ...      "stats": {"min": 3.0}},
    ...     {"group": "softmax-numpy", "extra_info": {"implementation": "peer"},
    ...      "stats": {"min": 2.0}}]}
    >>> ratios(run)
    {'softmax-numpy': 1.5}
    """
    if "ratios" in results:
        return {str(k): float(v) for k, v in results["ratios"].items()}
    times: dict[str, dict[str, float]] = {}
    for bench in results["benchmarks"]:
        implementation = bench.get("extra_info", {}).get("implementation")
        if implementation is None or bench.get("stats") is None:
            continue  # not a paired case, or a benchmark that did not run
        times.setdefault(bench["group"], {})[implementation] = float(bench["stats"][stat])
    return {
        group: pair["xpsoftmax"] / pair["peer"]
        for group, pair in sorted(times.items())
        if "xpsoftmax" in pair and pair.get("peer", 0.0) > 0.0
    }


def compare(
    baseline: dict[str, float], current: dict[str, float], max_increase: float
) -> tuple[list[str], list[str]]:
    """A report line per case, and the cases whose ratio grew by more than `max_increase`.

    Examples
    --------
    >>> lines, failed = compare({"a": 1.0, "b": 2.0}, {"a": 1.1, "b": 5.0}, max_increase=0.5)
    >>> failed
    ['b']
    """
    lines = [f"{'case':40s} {'baseline':>9s} {'current':>9s} {'change':>8s}"]
    failed = []
    for group in sorted(baseline.keys() | current.keys()):
        before, after = baseline.get(group, math.nan), current.get(group, math.nan)
        if group not in current or group not in baseline:
            note = "only in the baseline" if group not in current else "new"
            lines.append(f"{group:40s} {before:9.3f} {after:9.3f} {'':>8s}  {note}")
            continue
        change = after / before - 1.0
        worse = change > max_increase
        if worse:
            failed.append(group)
        flag = "  SLOWER than the peer by more than the threshold" if worse else ""
        lines.append(f"{group:40s} {before:9.3f} {after:9.3f} {change:+8.0%}{flag}")
    return lines, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--baseline", type=Path, help="pytest-benchmark JSON or a ratios file")
    parser.add_argument(
        "--max-increase",
        type=float,
        default=1.0,
        help="fail when a ratio grows by more than this fraction (default 1: doubles)",
    )
    parser.add_argument("--stat", choices=STATS, default="min")
    parser.add_argument("--write-ratios", type=Path, help="also write the ratios (a baseline)")
    args = parser.parse_args(argv)

    current = ratios(json.loads(args.results.read_text(encoding="utf-8")), args.stat)
    if not current:
        print(f"{args.results}: no paired xpsoftmax/peer benchmarks", file=sys.stderr)
        return 2
    if args.write_ratios is not None:
        payload = {"stat": args.stat, "ratios": current}
        args.write_ratios.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    if args.baseline is None:
        for group, ratio in current.items():
            print(f"{group:40s} {ratio:9.3f}")
        return 0
    baseline = ratios(json.loads(args.baseline.read_text(encoding="utf-8")), args.stat)
    lines, failed = compare(baseline, current, args.max_increase)
    print("\n".join(lines))
    if failed:
        print(
            f"\n{len(failed)} case(s) slower relative to the peer by more than "
            f"{args.max_increase:.0%}: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    print(f"\nno ratio grew by more than {args.max_increase:.0%} ({len(current)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
