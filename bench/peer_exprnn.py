"""rnnbench against a peer program: Lezcano/expRNN ``1_copying.py -m lstm`` on this CPU.

    python bench/peer_exprnn.py [--steps 3] [--repeats 3]

expRNN's LSTM copy setting: an nn.LSTMCell of 190 units unrolled over T+20 = 1020 steps, a
linear head at every step, mean cross-entropy, RMSprop lr 2e-4, batch 128, no clipping, 4000
iterations, no flush-to-zero. The anchor: 1.9 s per iteration on the 2-core CPU, measured
before this script existed (docs/performance.md, section 9). Target: rnnbench <= 0.5x that.

Measured side by side, interleaved, per round:

* ``plain``: the same run as rnnbench's (fused nn.LSTM, same weights and batches), plain loop;
* ``peer loop``: expRNN's loop rewritten here (LSTMCell + unbind + head per step, RMSprop),
  with flush-to-zero off as expRNN runs it, and on (denormals: see rnnbench/numerics.py);
* ``rnnbench``: ``train_run`` of the same configuration with the default diagnostics. Its
  per-iteration time is the marginal cost of an iteration, (t(S2) - t(S1)) / (S2 - S1) of two
  runs with diagnostics off (the fixed costs cancel), plus the default diagnostics' fixed cost
  per run (one run of 5 steps, so all 6 checkpoints are distinct, minus 5 marginal iterations)
  spread over expRNN's 4000 iterations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import interleaved, load_line, machine_line, plain_training
from rnnbench.config import RunConfig
from rnnbench.sweep import parse_sweep
from rnnbench.tasks import Task, task_for
from rnnbench.training import generator, train_run

ANCHOR_S = 1.9  # expRNN 1_copying.py -m lstm, seconds per iteration on the 2-core CPU
TARGET = 0.5  # rnnbench per iteration <= TARGET x ANCHOR_S
ITERATIONS = 4000  # expRNN's default run length (--T 4000): the diagnostics' fixed cost spreads
DIAG_STEPS = 5  # the smallest run whose 6 default checkpoints (0, 4 inner, end) are distinct


def config(steps: int, diagnostics: dict[str, Any]) -> RunConfig:
    return parse_sweep(
        {
            "name": "peer_exprnn",
            "grid": {"task": "copy", "arch": "lstm", "seq_len": 1000, "clip": "none", "seed": 0},
            "model": {"hidden_size": 190},
            "train": {"steps": steps, "batch_size": 128, "lr": 2e-4, "optimizer": "rmsprop"},
            "diagnostics": diagnostics,
        }
    ).runs[0]


def peer_loop(task: Task, steps: int, *, flush_denormal: bool) -> Callable[[], None]:
    """expRNN's training loop for ``-m lstm``, in its structure (not its code)."""

    def train() -> None:
        torch.set_flush_denormal(flush_denormal)
        try:
            cell = nn.LSTMCell(task.input_size, 190)
            head = nn.Linear(190, task.output_size)
            params = [*cell.parameters(), *head.parameters()]
            optimizer = torch.optim.RMSprop(params, lr=2e-4)
            data = generator("peer")
            for _ in range(steps):
                batch = task.sample(128, data)
                h = c = torch.zeros(128, 190)
                outputs = []
                for x_t in batch.x.unbind(1):
                    h, c = cell(x_t, (h, c))
                    outputs.append(head(h))
                loss = task.loss(torch.stack(outputs, 1), batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        finally:
            torch.set_flush_denormal(True)

    return train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="iterations of the plain loops")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(machine_line(), "|", load_line())
    steps, short = args.steps, 2
    task = task_for(config(steps, {}))
    variants: dict[str, Callable[[], Any]] = {
        "plain": plain_training(config(steps, {})),
        "peer loop, no flush": peer_loop(task, steps, flush_denormal=False),
        "peer loop, flush": peer_loop(task, steps, flush_denormal=True),
        "rnnbench off S1": lambda: train_run(config(short, {"enabled": False})),
        "rnnbench off S2": lambda: train_run(config(short + steps, {"enabled": False})),
        "rnnbench default": lambda: train_run(config(DIAG_STEPS, {})),
    }
    # No separate warm-up: a T=1000 iteration takes seconds, so first-call costs are noise;
    # the rotation of the order spreads them over the variants.
    times = interleaved(variants, args.repeats, warmup=False)
    per_iteration: dict[str, list[float]] = {
        name: [t / steps for t, _ in times[name]]
        for name in ("plain", "peer loop, no flush", "peer loop, flush")
    }
    marginal = [
        (b - a) / steps
        for (a, _), (b, _) in zip(times["rnnbench off S1"], times["rnnbench off S2"], strict=True)
    ]
    fixed = [
        t - DIAG_STEPS * m for (t, _), m in zip(times["rnnbench default"], marginal, strict=True)
    ]
    per_iteration["rnnbench"] = [m + f / ITERATIONS for m, f in zip(marginal, fixed, strict=True)]
    plain_result = times["plain"][0][1]
    plain_losses = plain_result.loss_values()
    rnnbench_losses = times["rnnbench off S2"][0][1]["curves"]["loss"]["value"]
    same = plain_losses == rnnbench_losses[:steps]

    print(
        "copy T=1000 (1020 steps unrolled), LSTM hidden 190, batch 128, RMSprop lr 2e-4, no clip; "
        f"medians of {args.repeats} interleaved rounds"
    )
    print(f"{'':24} {'s/iteration':>11} {'/ 1.9 s anchor':>14} {'/ peer loop':>11}")
    peer = per_iteration["peer loop, no flush"]
    for name, values in per_iteration.items():
        ratio_peer = statistics.median(v / p for v, p in zip(values, peer, strict=True))
        print(
            f"{name:24} {statistics.median(values):11.3f} "
            f"{statistics.median(values) / ANCHOR_S:14.2f} {ratio_peer:11.2f}"
        )
    rnnbench = statistics.median(per_iteration["rnnbench"])
    vs_plain = statistics.median(
        m / p for m, p in zip(marginal, per_iteration["plain"], strict=True)
    )
    print(
        f"rnnbench: marginal iteration {statistics.median(marginal):.3f} s ({vs_plain:.2f}x "
        "plain, paired), "
        f"default diagnostics {statistics.median(fixed):.1f} s per run "
        f"(spread over {ITERATIONS} iterations); plain and rnnbench losses identical: "
        f"{'yes' if same else 'NO'}"
    )
    verdict = "met" if rnnbench <= TARGET * ANCHOR_S else "missed"
    print(
        f"target rnnbench <= {TARGET} x {ANCHOR_S} s = {TARGET * ANCHOR_S:.2f} s/iteration: "
        f"{verdict} ({rnnbench / ANCHOR_S:.2f}x the anchor) | {load_line()}"
    )


if __name__ == "__main__":
    main()
