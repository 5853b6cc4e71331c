"""The performance gate: is HEAD slower than BASE on the headline cases?

``.ci/perf_gate BASE HEAD`` (any two git refs) installs xpsoftmax as it was at each commit into
a folder of its own (``asv_bench/gate_env/<commit>``, made once, reused), then times every
`headline case <benchmarks.common.headline_cases>` of both, interleaved: each round starts one
fresh process per commit and framework, in alternating order, so a machine that drifts slows
both commits alike. Each process computes on one thread and keeps, per case, the fastest of its
samples (noise only ever adds time); a case's time is its fastest over the rounds. Each process
stays on one core (`on_one_core`).

A case at least ``--factor`` (1.3) times slower is a suspect; the suspects alone are timed again,
in as many fresh rounds, and a suspect that is still that much slower, over all its samples, is a
regression. Exit status 1 names each regression; 0 otherwise. The benchmark code is always this
checkout's (as asv does), and the frameworks are those of the running environment.

The module is also the worker that times one framework's cases in one process
(``python perf_gate.py --worker ...``), and a library for `tests/test_perf_gate.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ENVIRONMENTS = HERE / "gate_env"
#: One thread for the libraries' own pools: what the worker's environment says before import.
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
#: Per sample, enough calls to fill this many seconds; per case, samples for this many seconds.
SAMPLE_SECONDS = 0.005
CASE_SECONDS = 0.25
MIN_SAMPLES = 5


# -- the verdict ----------------------------------------------------------------------------


def fastest(runs: Iterable[dict[str, float]]) -> dict[str, float]:
    """Per case, the fastest time over `runs` (each a mapping of case to seconds)."""
    best: dict[str, float] = {}
    for run in runs:
        for case, seconds in run.items():
            best[case] = min(seconds, best.get(case, seconds))
    return best


def slower_cases(base: dict[str, float], head: dict[str, float], factor: float) -> dict[str, float]:
    """The cases both sides timed whose head/base ratio is at least `factor`, with the ratio.

    >>> slower_cases({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": 1.5, "b": 1.1}, 1.3)
    {'a': 1.5}
    """
    ratios = {case: head[case] / base[case] for case in base if case in head}
    return {case: ratio for case, ratio in ratios.items() if ratio >= factor}


# -- preparing a commit ---------------------------------------------------------------------


def resolve(ref: str) -> str:
    """The full commit hash of a git ref, or SystemExit naming the ref."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", f"{ref}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError:
        raise SystemExit(f"perf_gate: {ref!r} is not a commit of this repository") from None
    return out.stdout.strip()


def environment(commit: str) -> Path:
    """A folder holding xpsoftmax as installed from `commit` (built once, then reused)."""
    target = ENVIRONMENTS / commit
    if (target / "xpsoftmax").is_dir():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        partial = target.with_name(commit + ".partial")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--no-build-isolation", "--no-compile", "--target", str(partial), tmp],
            check=True,
        )  # fmt: skip
        partial.rename(target)
    return target


# -- timing, in a worker process ------------------------------------------------------------


def time_case(run: Callable[[], object]) -> float:
    """The fastest time of one call of `run` over samples filling about `CASE_SECONDS`."""
    number = 1
    while True:  # calls per sample: enough to fill SAMPLE_SECONDS
        start = time.perf_counter()
        for _ in range(number):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= SAMPLE_SECONDS or number >= 1 << 16:
            break
        number *= 2
    best = elapsed / number
    samples, deadline = 1, time.perf_counter() + CASE_SECONDS
    while samples < MIN_SAMPLES or time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(number):
            run()
        best = min(best, (time.perf_counter() - start) / number)
        samples += 1
    return best


def on_one_core() -> None:
    """Keep this process, and the threads it starts, on one core: a jitted JAX call hands its
    work to a thread of XLA's and waits for it, and across cores that hand-over costs a
    different time in each process (docs/regressions.rst)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def work(cases: Sequence[str]) -> Timings:
    """Time `cases` (ids of `benchmarks.common.headline_cases`) in this process. A case that
    this commit cannot build or run (an older commit may lack a function the case calls) is
    left out of the times, with the reason."""
    timings = Timings({}, {})
    for case_id in cases:
        outcome = timed_or_why(case_id)
        if isinstance(outcome, str):
            timings.cannot[case_id] = outcome
        else:
            timings.times[case_id] = outcome
    return timings


def timed_or_why(case_id: str) -> float | str:
    """The case's time per call, or why it cannot be timed (the exception's first line)."""
    try:
        return time_case(build(case_id))
    except Exception as error:  # noqa: BLE001 (whatever the commit raises is the reason)
        return f"{type(error).__name__}: {error}".splitlines()[0]


def build(case_id: str) -> Callable[[], object]:
    """One headline case, built, compiled and run once: a call that computes and waits."""
    from benchmarks.common import headline_case, parse_headline_id
    from benchmarks.linear_cross_entropy import make

    variant, function, size = case_id.split()
    if function == "linear_cross_entropy":
        return make(variant, "xpsoftmax", size)
    return headline_case(*parse_headline_id(case_id)).run


def installed_from() -> str:
    """Where this process imports xpsoftmax from (the worker reports it with its times)."""
    import xpsoftmax

    return str(Path(xpsoftmax.__file__).resolve().parent)


# -- the driver -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timings:
    """What a worker measured: seconds per call of each case, and why it could not time the
    others."""

    times: dict[str, float]
    cannot: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Side:
    """One commit under test: its name for people, and where it is installed."""

    label: str
    site: Path


def run_worker(side: Side, cases: Sequence[str]) -> Timings:
    """Time `cases` of `side` in a fresh process."""
    env = {**os.environ, **ONE_THREAD}
    env["PYTHONPATH"] = os.pathsep.join([str(side.site), str(HERE)])
    env["PYTHONWARNINGS"] = "ignore"  # a framework's notices are not this run's output
    out = subprocess.run(
        [sys.executable, str(Path(__file__)), "--worker", *cases],
        check=False,
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"perf_gate: timing {side.label} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # (An editable install of the checkout must not win over the commit's own copy.)
    if not Path(result["module"]).is_relative_to(side.site.resolve()):
        raise SystemExit(f"perf_gate: {side.label} imported xpsoftmax from {result['module']}")
    return Timings(result["times"], result["cannot"])


def by_variant(cases: Iterable[str]) -> dict[str, list[str]]:
    """Cases grouped by variant, each group timed in one process."""
    groups: dict[str, list[str]] = {}
    for case in cases:
        groups.setdefault(case.split()[0], []).append(case)
    return groups


def timed_rounds(
    base: Side, head: Side, cases: Sequence[str], rounds: int, say: Callable[[str], None]
) -> tuple[Timings, Timings]:
    """The fastest times of `cases` over `rounds` interleaved rounds, for base and head, and
    the cases each could not time."""
    runs: dict[str, list[dict[str, float]]] = {base.label: [], head.label: []}
    cannot: dict[str, dict[str, str]] = {base.label: {}, head.label: {}}
    groups = by_variant(cases)
    for r in range(rounds):
        for g, (variant, group) in enumerate(groups.items()):
            # Alternate which commit goes first, so neither always follows the other.
            order = (base, head) if (r + g) % 2 == 0 else (head, base)
            for side in order:
                timings = run_worker(side, group)
                runs[side.label].append(timings.times)
                cannot[side.label].update(timings.cannot)
            say(f"  round {r + 1}/{rounds}: {variant} ({len(group)} cases)")
    at_base = Timings(fastest(runs[base.label]), cannot[base.label])
    return at_base, Timings(fastest(runs[head.label]), cannot[head.label])


def report(base: dict[str, float], head: dict[str, float], factor: float) -> list[str]:
    """One line per case: both times and their ratio, the ratios at `factor` or above marked."""
    lines = []
    both = [case for case in base if case in head]
    for case in sorted(both, key=lambda c: head[c] / base[c], reverse=True):
        ratio = head[case] / base[case]
        mark = "  <-- slower" if ratio >= factor else ""
        lines.append(
            f"  {case:42} {base[case] * 1e6:11.1f} us {head[case] * 1e6:11.1f} us"
            f" {ratio:6.2f}x{mark}"
        )
    return lines


def confirmed(
    base: dict[str, float],
    head: dict[str, float],
    factor: float,
    retime: Callable[[list[str]], tuple[dict[str, float], dict[str, float]]],
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """The cases at least `factor` times slower once the suspects are timed again.

    `retime(cases)` times just those cases afresh, for base and head; each case then keeps
    its fastest time over both timings. Returns the regressions with their ratios, and the
    merged times.

    >>> confirmed({"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 1.0}, 1.3,
    ...           lambda cases: ({"a": 1.0}, {"a": 1.1}))[0]
    {}
    """
    suspects = sorted(slower_cases(base, head, factor))
    if not suspects:
        return {}, base, head
    again = retime(suspects)
    base, head = fastest([base, again[0]]), fastest([head, again[1]])
    return slower_cases(base, head, factor), base, head


def gate(base_ref: str, head_ref: str, factor: float, rounds: int, only: list[str]) -> int:
    """Compare two commits; 1 when a case is confirmed at least `factor` times slower."""

    def say(line: str) -> None:
        print(line, flush=True)

    started = time.perf_counter()
    sides = []
    for ref in (base_ref, head_ref):
        commit = resolve(ref)
        say(f"perf_gate: {ref} is {commit[:10]}; installing it (reused once made)")
        sides.append(Side(f"{ref} ({commit[:10]})", environment(commit)))
    base, head = sides
    cases = headline_ids()
    unknown = sorted(set(only) - set(cases))
    if unknown:
        raise SystemExit(f"perf_gate: no headline case {unknown[0]!r}; the cases are {cases}")
    cases = [case for case in cases if not only or case in only]
    say(f"perf_gate: {len(cases)} headline cases, {rounds} interleaved rounds, one thread")
    at_base, at_head = timed_rounds(base, head, cases, rounds, say)
    base_times, head_times = at_base.times, at_head.times
    say(f"perf_gate: time per call, {base.label} -> {head.label}, fastest of all rounds:")
    for line in report(base_times, head_times, factor):
        say(line)
    for case, why in sorted(at_base.cannot.items()):
        say(f"  {case}: not compared, {base.label} cannot run it ({why})")
    lost = {case: why for case, why in at_head.cannot.items() if case not in at_base.cannot}

    def retime(suspects: list[str]) -> tuple[dict[str, float], dict[str, float]]:
        say(f"perf_gate: {len(suspects)} case(s) at least {factor}x slower; timing them again")
        again = timed_rounds(base, head, suspects, rounds, say)
        return again[0].times, again[1].times

    regressions, base_times, head_times = confirmed(base_times, head_times, factor, retime)
    minutes = (time.perf_counter() - started) / 60
    for case, why in sorted(lost.items()):
        say(f"perf_gate: {head.label} cannot run {case}, which {base.label} ran: {why}")
    if regressions:
        say(f"perf_gate: SLOWER by {factor}x or more, confirmed ({minutes:.1f} min):")
        for case, ratio in sorted(regressions.items()):
            say(f"  {case}: {ratio:.2f}x ({base_times[case] * 1e6:.1f} -> "
                f"{head_times[case] * 1e6:.1f} us)")  # fmt: skip
    if regressions or lost:
        return 1
    say(f"perf_gate: no case {factor}x slower ({minutes:.1f} min)")
    return 0


def headline_ids() -> list[str]:
    """The ids of the headline cases, from this checkout's benchmarks: asv's ``Headline`` and
    ``HeadlineLinearCrossEntropy``."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from benchmarks.bench_linear_cross_entropy import HeadlineLinearCrossEntropy
    from benchmarks.common import headline_ids as ids

    (frameworks,) = HeadlineLinearCrossEntropy.params
    return [*ids(), *(f"{framework} linear_cross_entropy small" for framework in frameworks)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".ci/perf_gate",
        description="Exit 1 when HEAD is confirmed slower than BASE on a headline case.",
    )
    parser.add_argument("base", metavar="BASE", help="git ref of the baseline commit")
    parser.add_argument("head", metavar="HEAD", help="git ref of the commit under test")
    parser.add_argument(
        "--factor", type=float, default=1.3, help="slowdown that fails (default 1.3, i.e. 30%%)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds per timing (default 3)"
    )
    parser.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="CASE",
        help='time only this case, e.g. "torch softmax per_call" (repeatable)',
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--worker":
        on_one_core()
        timings = work(sys.argv[2:])
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        print(json.dumps({"module": installed_from(), "cores": cores, **vars(timings)}))
        return 0
    args = parser.parse_args(argv)
    if args.factor <= 1.0:
        parser.error(f"--factor must be above 1, got {args.factor}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return gate(args.base, args.head, args.factor, args.rounds, args.case)


if __name__ == "__main__":
    sys.exit(main())
