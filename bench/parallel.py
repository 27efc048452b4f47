"""Runs per machine: a whole sweep on one worker process against several, and threads against
processes, on the CPU or on one GPU.

    python bench/parallel.py [--sweep tasks/smoke.toml] [--repeats 3] [--only-first N]
                             [--variants 1x1,2x1,1x2] [--device cpu]
    python bench/parallel.py --device cuda --sweep tasks/gpu_throughput.toml --repeats 1

A variant ``WxT`` runs the sweep from scratch into a fresh temporary store through
``rnnbench.execution.runner.run_sweep`` with W spawned worker processes of T torch threads each
(pool start-up included). The first variant is the reference, normally ``1x1``, one run after
another.
Defaults: ``1x1,2x1,1x2`` on the CPU (target: 2 workers >= 1.7x one; and 2 processes x 1 thread
against 1 process x 2 threads); ``1x1,4x1,8x1`` on a GPU, where the workers share the one card
(target: >= 4x the throughput of one run at a time for 8 runs).

Interleaved (the order rotates each round), medians of the paired ratios. Beside the speed-up
each variant says whether its runs trained as they did alone: the number of runs whose trajectory
hash (every step's loss and pre-clip norm, bit for bit) equals the reference's, and the largest
relative difference of the final held-out loss. ``--only-first N`` runs the sweep's first N runs
only (a documented subset, for sweeps too long to repeat).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, load_line, machine_line, median_ratio, median_s
from rnnbench.execution.runner import run_sweep
from rnnbench.results.record import RunRecord
from rnnbench.sweep import Sweep, load_sweep

REPO = Path(__file__).resolve().parents[1]
#: (device, what the target compares it against, the target's speed-up)
TARGETS = {"cpu": (2, 1.7), "cuda": (8, 4.0)}
DEFAULT_VARIANTS = {"cpu": "1x1,2x1,1x2", "cuda": "1x1,4x1,8x1"}

#: Per run id: (trajectory hash, final held-out loss).
Outcome = dict[str, tuple[str, float]]


def parse_variants(text: str) -> list[tuple[int, int]]:
    """``"1x1,2x1"`` -> [(1, 1), (2, 1)]: workers x threads per worker."""
    variants = []
    for item in text.split(","):
        workers, _, threads = item.strip().partition("x")
        if not (workers.isdigit() and threads.isdigit() and int(workers) and int(threads)):
            raise ValueError(f"each item is WORKERSxTHREADS, e.g. 2x1; got {item!r}")
        variants.append((int(workers), int(threads)))
    return variants


def name(workers: int, threads: int) -> str:
    procs = "proc" if workers == 1 else "procs"
    return f"{workers} {procs} x {threads} thread{'' if threads == 1 else 's'}"


def variant(sweep: Sweep, workers: int, threads: int, device: str) -> Callable[[], Outcome]:
    def run() -> Outcome:
        outcome: Outcome = {}

        def keep(record: RunRecord) -> None:
            outcome[record["run_id"]] = (
                record["metrics"].get("trajectory_hash", ""),
                record["final_loss"],
            )

        with tempfile.TemporaryDirectory(prefix="rnnbench-parallel-") as folder:
            summary = run_sweep(
                sweep,
                Path(folder) / "results.db",
                workers=workers,
                threads=threads,
                device=device,
                on_record=keep,
            )
        if summary.statuses.get("error"):
            raise RuntimeError(f"{name(workers, threads)}: {summary.line()}")
        return outcome

    return run


def agreement(reference: Outcome, other: Outcome) -> tuple[int, float]:
    """Runs with the reference's trajectory hash; largest relative final-loss difference."""
    same = sum(other[run][0] == ref for run, (ref, _) in reference.items())
    worst = 0.0
    for run, (_, loss) in reference.items():
        if math.isfinite(loss) and math.isfinite(other[run][1]):
            worst = max(worst, abs(other[run][1] - loss) / max(abs(loss), 1e-30))
    return same, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default=str(REPO / "tasks" / "smoke.toml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-first", type=int, default=0, help="run only the first N runs")
    parser.add_argument("--device", default="cpu", choices=sorted(TARGETS))
    parser.add_argument(
        "--variants",
        default=None,
        help="WORKERSxTHREADS,... (first = reference); default "
        + "; ".join(f"{d}: {v}" for d, v in DEFAULT_VARIANTS.items()),
    )
    parser.add_argument(
        "--no-threads-variant",
        action="store_true",
        help="CPU: skip 1 proc x 2 threads (for long sweeps: only the target's two variants)",
    )
    args = parser.parse_args()
    try:
        chosen = parse_variants(args.variants or DEFAULT_VARIANTS[args.device])
    except ValueError as exc:
        parser.error(f"--variants: {exc}")
    if args.no_threads_variant:
        chosen = [(w, t) for w, t in chosen if t == 1] or chosen[:1]
    sweep = load_sweep(args.sweep)
    if args.only_first:
        sweep = dataclasses.replace(sweep, runs=sweep.runs[: args.only_first])
    print(machine_line(args.device), "|", load_line())
    print(f"sweep {sweep.name}: {len(sweep.runs)} runs; medians of {args.repeats} rounds")
    variants = {name(w, t): variant(sweep, w, t, args.device) for w, t in chosen}
    times = interleaved(
        variants,
        args.repeats,
        warmup=False,  # each variant starts its own pool: start-up is part of what it costs
    )
    reference_name = name(*chosen[0])
    serial = times[reference_name]
    reference = serial[0][1]
    print(
        f"{'variant':20} {'wall s':>7} {'runs/min':>9} {'speedup':>8} "
        f"{'same hash':>10} {'max rel. loss diff':>19}"
    )
    for label, results in times.items():
        seconds = median_s(results)
        same, worst = agreement(reference, results[0][1])
        print(
            f"{label:20} {seconds:7.1f} {len(sweep.runs) / seconds * 60:9.1f} "
            f"{median_ratio(serial, results):8.2f} {f'{same}/{len(reference)}':>10} "
            f"{worst:19.1e}"
        )
    workers, target = TARGETS[args.device]
    lines = []
    candidates = [(w, t) for w, t in chosen if w == workers]
    for w, t in candidates:
        speedup = median_ratio(serial, times[name(w, t)])
        verdict = "met" if speedup >= target else "missed"
        lines.append(
            f"{name(w, t)} vs {reference_name}: {speedup:.2f}x (target >= {target}x: {verdict})"
        )
    if args.device == "cpu" and (2, 1) in chosen and (1, 2) in chosen:
        versus = median_ratio(times[name(1, 2)], times[name(2, 1)])
        lines.append(f"2 processes x 1 thread are {versus:.2f}x the throughput of 1 x 2 threads")
    print("; ".join(lines or ["(no variant with the target's worker count)"]), "|", load_line())


if __name__ == "__main__":
    main()
