"""Wall-time overhead of a run through rnnbench against the plain PyTorch loop it wraps.

    python bench/overhead.py [--task copy] [--seq-len 100] [--hidden 128] [--batch 64]
                             [--steps 300] [--repeats 3] [--archs rnn,lstm,gru] [--device cuda]

Per architecture, three ways to train the same model on the same batches for the same steps:

* ``plain``: nn.X + linear head, Adam, clip_grad_norm_(1.0), batches from ``task.sample`` with
  the run's own training stream; nothing else (``bench.common.plain_training``);
* ``rnnbench``: ``train_run`` with the diagnostics at their defaults (``DiagnosticSettings()``:
  gradient profiles and evaluations at init, 4 checkpoints and the end, parameter norms, the
  memory probe), plus everything the record needs;
* ``diag off``: ``train_run`` with ``[diagnostics] enabled = false``.

The three are interleaved (the order rotates each round) and each ratio is the median over
rounds of the paired ratio, because the machine is shared and its load drifts. All three must
produce the same trajectory hash: the same work, bit for bit. Where ``model.impl = "auto"``
picks the cell loop (CPU, RNN/GRU, batch x hidden x T >= 7.5 M) plain stays the fused nn.X, so
only rnnbench and diag off are compared there (the column says "(loop)"). Targets: rnnbench
<= 1.10x plain, diag off <= 1.03x.

The diagnostics cost a fixed amount per run (6 evaluations of the held-out set, 6 profiles, one
probe), not a fraction of each step, so the ratio falls with the number of steps. The last
columns give that fixed cost in plain steps and, from it, the run length at which the ratio
would reach 1.10 (a projection from the measured figures, not a measurement).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, machine_line, median_ratio, median_s, plain_training
from rnnbench.config import RunConfig
from rnnbench.numerics import full_float32
from rnnbench.sweep import parse_sweep
from rnnbench.training import train_run

TARGET, TARGET_OFF = 1.10, 1.03


def run_config(args: argparse.Namespace, arch: str, diagnostics: dict[str, Any]) -> RunConfig:
    sweep = {
        "name": "overhead",
        "grid": {
            "task": args.task,
            "arch": arch,
            "seq_len": args.seq_len,
            "clip": "norm:1.0",
            "seed": 0,
        },
        "model": {"hidden_size": args.hidden},
        "train": {"steps": args.steps, "batch_size": args.batch, "lr": 1e-3, "optimizer": "adam"},
        "diagnostics": diagnostics,
    }
    return parse_sweep(sweep).runs[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="copy", choices=["copy", "adding"])
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--archs", default="rnn,lstm,gru")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # train_run sets it; the reference gets the same
    print(machine_line(args.device))
    print(
        f"task {args.task} T={args.seq_len}, hidden {args.hidden}, batch {args.batch}, "
        f"{args.steps} steps, Adam + clip_grad_norm_(1.0); medians of {args.repeats} "
        "interleaved rounds"
    )
    header = (
        f"{'arch':5} {'plain s':>8} {'rnnbench s':>10} {'ratio':>6} {'diag off s':>10} "
        f"{'ratio':>6} {'same traj':>9} {'diag fixed':>10} {'steps for 1.10':>14}"
    )
    print(header)
    misses = []
    for arch in args.archs.split(","):
        default = run_config(args, arch, {})
        off = run_config(args, arch, {"enabled": False})
        # Warm-up with a few steps (allocator, lazy init, the cached environment probe); the
        # timed rounds then rotate their order.
        for config in (default, off):
            short = RunConfig.from_dict(
                {**config.to_dict(), "train": {**config.to_dict()["train"], "steps": 2}}
            )
            train_run(short, args.device)
            plain_training(short, args.device)()
        times = interleaved(
            {
                "plain": plain_training(default, args.device),
                "rnnbench": lambda c=default: train_run(c, args.device),
                "off": lambda c=off: train_run(c, args.device),
            },
            args.repeats,
            warmup=False,
        )
        hashes = {rec["metrics"]["trajectory_hash"] for _, rec in times["rnnbench"]}
        hashes |= {rec["metrics"]["trajectory_hash"] for _, rec in times["off"]}
        impl = times["rnnbench"][0][1]["metrics"]["impl"]
        if impl == "fused":  # plain is always the fused nn.X; on the loop the two round apart
            hashes |= {r.trajectory_hash for _, r in times["plain"]}
        same = ("yes" if len(hashes) == 1 else "NO") + ("" if impl == "fused" else " (loop)")
        ratio = median_ratio(times["rnnbench"], times["plain"])
        ratio_off = median_ratio(times["off"], times["plain"])
        plain = median_s(times["plain"])
        step = plain / args.steps
        # fixed diagnostic cost: the paired difference rnnbench - diag off, in plain steps
        fixed = statistics.median(
            (a - b) / step for (a, _), (b, _) in zip(times["rnnbench"], times["off"], strict=True)
        )
        if ratio_off >= TARGET:
            needed = f"{'never':>14}"
        elif fixed <= 0:  # no fixed cost measurable above the noise: any length
            needed = f"{'any':>14}"
        else:
            needed = f"{math.ceil(fixed / (TARGET - ratio_off)):14d}"
        print(
            f"{arch:5} {plain:8.2f} {median_s(times['rnnbench']):10.2f} {ratio:6.3f} "
            f"{median_s(times['off']):10.2f} {ratio_off:6.3f} "
            f"{same:>9} {fixed:8.1f} st {needed}",
            flush=True,
        )
        if ratio > TARGET:
            misses.append(f"{arch}: rnnbench {ratio:.3f}x > {TARGET}x")
        if ratio_off > TARGET_OFF:
            misses.append(f"{arch}: diag off {ratio_off:.3f}x > {TARGET_OFF}x")
    print(
        f"targets: rnnbench <= {TARGET}x, diag off <= {TARGET_OFF}x plain. "
        + ("missed: " + "; ".join(misses) if misses else "all met")
    )
    print(
        "'diag fixed': the default diagnostics' cost per run in plain steps; 'steps for 1.10': "
        "the run length at which the default ratio would reach 1.10 (projected)"
    )


if __name__ == "__main__":
    # Both sides in IEEE float32, as rnnbench runs (cuDNN defaults to TF32 on GPUs)
    with full_float32():
        main()
