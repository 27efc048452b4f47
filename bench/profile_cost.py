"""Cost of the exact gradient profile relative to one plain training step, per architecture.

    python bench/profile_cost.py [--seq-len 1000] [--batch 128] [--hidden 128] [--device cpu]

Prints, per architecture: one plain-PyTorch training step (fused nn.X + clip_grad_norm_ + Adam),
rnnbench's exact profile, and the obvious retain_grad cell loop, with both ratios. Target:
profile <= 2x a step at T = 1000 (on an H100 the retain_grad loop was measured at 30-60x).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rnnbench
from bench.common import median_seconds, plain_step, retain_grad_loop
from rnnbench.numerics import full_float32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--archs", default="rnn,lstm,gru")
    parser.add_argument("--no-loop", action="store_true", help="skip the retain_grad loop")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    device = args.device
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(
        f"device {name}, torch {torch.__version__}, copy task T={args.seq_len}, "
        f"batch {args.batch}, hidden {args.hidden}"
    )
    print(f"{'arch':6} {'step ms':>9} {'profile ms':>11} {'ratio':>6} {'loop ms':>9} {'ratio':>6}")
    for arch in args.archs.split(","):
        task = rnnbench.make_task("copy", seq_len=args.seq_len)
        model = rnnbench.make_model(arch, task, hidden_size=args.hidden, seed=0).to(device)
        batch = task.sample(args.batch, torch.Generator().manual_seed(0)).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        step = median_seconds(plain_step(model, task, batch, optimizer), args.repeats, device)
        profile = median_seconds(
            lambda m=model, b=batch, t=task: rnnbench.gradient_norms_through_time(m, t, b),
            args.repeats,
            device,
        )
        loop = (
            ""
            if args.no_loop
            else median_seconds(
                retain_grad_loop(model, task, batch), max(1, args.repeats // 2), device
            )
        )
        loop_cols = "" if loop == "" else f"{loop * 1e3:9.1f} {loop / step:6.2f}"
        print(f"{arch:6} {step * 1e3:9.1f} {profile * 1e3:11.1f} {profile / step:6.2f} {loop_cols}")


if __name__ == "__main__":
    # Both sides in IEEE float32, as rnnbench runs (cuDNN defaults to TF32 on GPUs)
    with full_float32():
        main()
