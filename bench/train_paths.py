"""The training step's implementation, per (architecture, shape): fused nn.X against a cell loop.

    python bench/train_paths.py [--shapes T:B:H,...] [--archs rnn,lstm,gru] [--repeats 5]
                                [--device cpu]

Target: choose the faster implementation per (device, architecture, shape) by measurement
(``model.impl = "auto"``, docs/performance.md, section 3). Each variant runs one training step
(forward over the copy task, loss, backward, Adam) on the same weights and batch, interleaved:

* ``fused``: rnnbench's model, the fused ``nn.RNN/LSTM/GRU`` (what ``train_run`` uses);
* ``cell loop``: ``nn.RNNCell/LSTMCell/GRUCell`` with the same weights, unrolled with ``unbind``
  (the form once reported to beat the fused LSTM at batch 256 / hidden 256 on this CPU).

Prints the loop's time as a multiple of the fused step (> 1: fused is faster) and the largest
relative gradient difference between the two (float tolerance, not bit-identity: the two paths
round differently, which is why a path switch would have to be a recorded config field).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rnnbench
from bench.common import interleaved, load_line, machine_line, median_ratio, median_s
from rnnbench.models import RecurrentModel
from rnnbench.numerics import full_float32
from rnnbench.tasks import Batch, Task

CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}


def cell_loop_model(model: RecurrentModel) -> tuple[nn.Module, nn.Module]:
    """The model's layer-0 weights in an ``nn.*Cell``, and its head."""
    rnn, mode = model.core.rnn, model.core.mode  # type: ignore[union-attr]
    extra = {"nonlinearity": mode[4:]} if mode.startswith("rnn") else {}
    cell = CELLS[mode.split("_")[0]](rnn.input_size, rnn.hidden_size, **extra)
    cell.load_state_dict({k[:-3]: v for k, v in rnn.state_dict().items() if k.endswith("_l0")})
    return cell.to(next(model.parameters()).device), model.head


def fused_step(model: RecurrentModel, task: Task, batch: Batch) -> Callable[[], list[torch.Tensor]]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> list[torch.Tensor]:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(batch.x), batch).backward()
        grads = [p.grad.clone() for p in model.core.parameters()]  # type: ignore[union-attr]
        optimizer.step()
        return grads

    return step


def loop_step(cell: nn.Module, head: nn.Module, task: Task, batch: Batch) -> Callable[[], list]:
    optimizer = torch.optim.Adam([*cell.parameters(), *head.parameters()], lr=1e-3)
    lstm = isinstance(cell, nn.LSTMCell)

    def step() -> list[torch.Tensor]:
        optimizer.zero_grad(set_to_none=True)
        h = batch.x.new_zeros(batch.x.shape[0], cell.hidden_size)
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] = (h, h) if lstm else h
        outputs = []
        for x_t in batch.x.unbind(1):
            state = cell(x_t, state)
            outputs.append(state[0] if lstm else state)
        task.loss(head(torch.stack(outputs, 1)), batch).backward()
        grads = [p.grad.clone() for p in cell.parameters()]
        optimizer.step()
        return grads

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="20:32:32,60:64:64,100:64:128,100:256:256,1000:128:190")
    parser.add_argument("--archs", default="rnn,lstm,gru")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    print(machine_line(args.device), "|", load_line())
    print("one training step (copy task, Adam); loop time / fused time, medians of paired rounds")
    print(
        f"{'T':>5} {'batch':>5} {'hidden':>6} {'arch':5} {'fused ms':>9} {'loop ms':>9} "
        f"{'loop/fused':>10} {'grad rel diff':>13}"
    )
    for shape in args.shapes.split(","):
        seq_len, batch_size, hidden = (int(v) for v in shape.split(":"))
        task = rnnbench.make_task("copy", seq_len=seq_len)
        batch = task.sample(batch_size, torch.Generator().manual_seed(0)).to(args.device)
        for arch in args.archs.split(","):
            fused = rnnbench.make_model(arch, task, hidden_size=hidden, seed=0).to(args.device)
            cell, head = cell_loop_model(fused)
            # The two models start equal; each has its own copy of the head and optimizer.
            head = type(head)(head.in_features, head.out_features).to(args.device)
            head.load_state_dict(fused.head.state_dict())
            repeats = (
                args.repeats if seq_len * batch_size * hidden < 5e6 else max(2, args.repeats // 2)
            )
            steps = {
                "fused": fused_step(fused, task, batch),
                "loop": loop_step(cell, head, task, batch),
            }
            # The first call of each is the warm-up, from the same weights: compare its grads.
            first = {name: step() for name, step in steps.items()}
            diff = max(
                float((a - b).norm() / a.norm().clamp_min(1e-30))
                for a, b in zip(first["fused"], first["loop"], strict=True)
            )
            # Later rounds start from weights Adam has moved; that changes nothing in the time.
            times = interleaved(steps, repeats, warmup=False)
            ratio = median_ratio(times["loop"], times["fused"])
            fused_ms, loop_ms = median_s(times["fused"]) * 1e3, median_s(times["loop"]) * 1e3
            print(
                f"{seq_len:5} {batch_size:5} {hidden:6} {arch:5} "
                f"{fused_ms:9.1f} {loop_ms:9.1f} {ratio:10.2f} {diff:13.1e}"
            )
    print(load_line())


if __name__ == "__main__":
    # Both sides in IEEE float32, as rnnbench runs (cuDNN defaults to TF32 on GPUs)
    with full_float32():
        main()
