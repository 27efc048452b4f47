"""What the dynamics diagnostics cost a study: wall time with them against without.

The Jacobian singular values and the saturation at every profile checkpoint, the Lyapunov
spectrum at init and end and the task memory probe at the end (``[diagnostics]``
``jacobian_top_k``, ``saturation``, ``lyapunov``, ``task_probe``) are measured between training
steps. This trains runs of a sweep (by default ``tasks/quick.toml``, seed 0, norm clipping, at
T = 15 and 60) in this process on one torch thread, as a worker does, three ways: as the sweep
says (all on, the defaults), with the four switched off, and with every diagnostic off
(``enabled = false``), interleaved so that drift in the machine's speed hits all three alike,
and prints each run's times and the ratios. The target: all four together add at most 10 %.

    python bench/dynamics_cost.py [--sweep tasks/quick.toml] [--seq-len 15 60] [--all]
                                  [--ends-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from rnnbench.config.schema import ClipSpec, RunConfig
from rnnbench.execution.workers import pin_threads
from rnnbench.sweep import load_sweep
from rnnbench.training.loop import train_run

OFF = {"jacobian_top_k": 0, "lyapunov": 0, "saturation": False, "task_probe": False}


def variants(config: RunConfig) -> dict[str, RunConfig]:
    diag = config.diagnostics
    return {
        "dynamics on": config,
        "dynamics off": dataclasses.replace(config, diagnostics=dataclasses.replace(diag, **OFF)),
        "all diagnostics off": dataclasses.replace(
            config, diagnostics=dataclasses.replace(diag, enabled=False)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="tasks/quick.toml")
    parser.add_argument("--seq-len", type=int, nargs="+", default=[15, 60])
    parser.add_argument("--clip", default="norm:1.0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all", action="store_true", help="every run of the sweep")
    parser.add_argument(
        "--ends-only",
        action="store_true",
        help="the Jacobians and saturation at init and end only (dynamics_at_checkpoints false)",
    )
    args = parser.parse_args()
    pin_threads(1)  # torch and numpy's BLAS, as a worker does
    runs = load_sweep(args.sweep).runs
    if args.ends_only:
        runs = [
            dataclasses.replace(
                r, diagnostics=dataclasses.replace(r.diagnostics, dynamics_at_checkpoints=False)
            )
            for r in runs
        ]
    if not runs:
        raise SystemExit(f"{args.sweep}: no runs")
    if not args.all:
        runs = [
            r
            for r in runs
            if r.seq_len in args.seq_len
            and r.clip_spec == ClipSpec.parse(args.clip)
            and r.seed == args.seed
        ]
    if not runs:
        raise SystemExit(
            f"no run of {args.sweep} at T in {args.seq_len}, {args.clip}, seed {args.seed}"
        )
    for arch in sorted({r.arch for r in runs}):
        # one short run per architecture first: the first call of each kernel, LAPACK routine
        # and dispatch mode costs once per process (a sweep's worker pays it once, not per run)
        warm = next(r for r in runs if r.arch == arch)
        train_run(dataclasses.replace(warm, train=dataclasses.replace(warm.train, steps=2)))
    totals: dict[str, float] = {}
    print(f"{len(runs)} runs of {args.sweep}, one torch thread")
    for config in runs:
        times = {}
        for name, variant in variants(config).items():
            started = time.perf_counter()
            record = train_run(variant)
            times[name] = time.perf_counter() - started
            totals[name] = totals.get(name, 0.0) + times[name]
            if name == "dynamics on":
                assert record.status == "ok", record.error
        cells = "  ".join(f"{name} {seconds:6.2f} s" for name, seconds in times.items())
        print(f"{config.arch:>6} T={config.seq_len:<4} {cells}")
    on, off, bare = totals["dynamics on"], totals["dynamics off"], totals["all diagnostics off"]
    print(
        f"total: dynamics on {on:.1f} s, off {off:.1f} s, every diagnostic off {bare:.1f} s\n"
        f"ratio dynamics on / off: {on / off:.3f} (target <= 1.10); "
        f"on / every diagnostic off: {on / bare:.3f}"
    )


if __name__ == "__main__":
    main()
