"""Training-step and exact-profile time of the modern architectures, against an nn.GRU step.

    python bench/modern_step.py [--seq-len 1000] [--batch 128] [--hidden 128] [--repeats 3]
    python bench/modern_step.py --paths [--path-lens 16,64,256,1000]

For each of lru, mingru (scan and sequential), lstm_ln and gru_ln: one training step (forward,
backward, Adam) and the exact hidden profile (``gradient_norms_through_time``), as ratios:
step / (the nn.GRU step of the same width, measured in the same round) and profile / (its own
step). All variants are interleaved round by round (the order rotates) and each ratio is the
median of the per-round ratios: on a shared machine only side-by-side ratios mean anything.
Targets (the issue): step <= 1.5x the GRU step; profile <= 2x the architecture's own step.

``--paths`` measures what the ``impl = "auto"`` rules of lru and mingru are written from: the
training step of the scan over the sequential path at several T (<1: the scan is faster).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rnnbench
from bench.common import interleaved, load_line, machine_line, median_ratio, median_s

#: (label, architecture, [archs.NAME] parameters)
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("lru", "lru", {}),
    ("mingru scan", "mingru", {"impl": "scan"}),
    ("mingru sequential", "mingru", {"impl": "sequential"}),
    ("lstm_ln", "lstm_ln", {}),
    ("gru_ln", "gru_ln", {}),
]


def training_step(
    arch: str, params: dict[str, Any], seq_len: int, batch_size: int, hidden: int
) -> tuple[Callable[[], None], Callable[[], torch.Tensor]]:
    """(one Adam training step, the exact hidden profile) of a fresh model on the adding task."""
    task = rnnbench.make_task("adding", seq_len=seq_len)
    model = rnnbench.make_model(arch, task, hidden_size=hidden, seed=0, arch_params=params)
    batch = task.sample(batch_size, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(batch.x), batch).backward()
        optimizer.step()

    def profile() -> torch.Tensor:
        return rnnbench.gradient_norms_through_time(model, task, batch)

    return step, profile


def table(args: argparse.Namespace) -> None:
    shape = (args.seq_len, args.batch, args.hidden)
    fns: dict[str, Callable[[], Any]] = {"gru": training_step("gru", {}, *shape)[0]}
    for label, arch, params in VARIANTS:
        step, profile = training_step(arch, params, *shape)
        fns[f"{label} step"] = step
        fns[f"{label} profile"] = profile
    times = interleaved(fns, args.repeats)
    gru = times["gru"]
    print(f"T={args.seq_len} batch {args.batch} hidden {args.hidden}, {args.repeats} rounds")
    print(f"nn.GRU step {1000 * median_s(gru):.0f} ms")
    header = f"{'arch':18} {'step ms':>8} {'step/GRU':>9} {'profile ms':>11} {'prof/step':>10}"
    print(header)
    for label, _, _ in VARIANTS:
        steps, profiles = times[f"{label} step"], times[f"{label} profile"]
        print(
            f"{label:18} {1000 * median_s(steps):8.0f} {median_ratio(steps, gru):9.2f} "
            f"{1000 * median_s(profiles):11.0f} {median_ratio(profiles, steps):10.2f}"
        )
    print("targets: step/GRU <= 1.5, profile/step <= 2")


def paths(args: argparse.Namespace) -> None:
    print(f"batch {args.batch} hidden {args.hidden}: training step, scan / sequential")
    print(f"{'T':>6} {'lru':>8} {'mingru':>8}")
    for seq_len in (int(t) for t in args.path_lens.split(",")):
        shape = (seq_len, args.batch, args.hidden)
        fns = {
            f"{arch} {impl}": training_step(arch, {"impl": impl}, *shape)[0]
            for arch in ("lru", "mingru")
            for impl in ("scan", "sequential")
        }
        times = interleaved(fns, args.repeats)
        ratios = [
            median_ratio(times[f"{a} scan"], times[f"{a} sequential"]) for a in ("lru", "mingru")
        ]
        print(f"{seq_len:6} {ratios[0]:8.2f} {ratios[1]:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", action="store_true", help="scan vs sequential by T instead")
    parser.add_argument("--path-lens", default="16,64,256,1000")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(machine_line(), load_line(), sep="; ")
    paths(args) if args.paths else table(args)


if __name__ == "__main__":
    main()
