"""The cost model: matmul FLOPs of a training step and of a whole run.

One training step of a model with ``g`` gate blocks (1 RNN, 3 GRU, 4 LSTM), unrolled for T time
steps on a batch of B, with hidden size H, input size I and output size O:

    forward  = T · (Σ_layers 2·B·(I_l + H)·g·H  +  2·B·H·O)        I_0 = I, I_l = H above
    training = 3 · forward                                           (backward = 2 x forward)

i.e. ``6·g·T·B·H·(I+H) + 6·T·B·H·O`` for one layer (docs/performance.md). Elementwise gate
math and the optimizer are O(T·B·g·H) and O(parameters), under 2% at the benchmarked shapes,
and left out. :func:`run_flops` adds the diagnostics' passes, so a sweep can be scheduled
longest run first and its progress weighted by work rather than by run count.
"""

from __future__ import annotations

from rnnbench.config.schema import RunConfig
from rnnbench.models import ARCHITECTURES
from rnnbench.tasks import task_for


def forward_flops(
    gates: int,
    time_steps: int,
    batch: int,
    hidden: int,
    inputs: int,
    outputs: int,
    layers: int = 1,
) -> float:
    """Matmul FLOPs of one forward pass (recurrent layers and the per-step linear head)."""
    per_step = sum(
        2.0 * batch * ((inputs if layer == 0 else hidden) + hidden) * gates * hidden
        for layer in range(layers)
    )
    return time_steps * (per_step + 2.0 * batch * hidden * outputs)


def step_flops(
    gates: int,
    time_steps: int,
    batch: int,
    hidden: int,
    inputs: int,
    outputs: int,
    layers: int = 1,
) -> float:
    """Matmul FLOPs of one training step: forward, and a backward of twice the forward."""
    return 3.0 * forward_flops(gates, time_steps, batch, hidden, inputs, outputs, layers)


def run_flops(config: RunConfig) -> float:
    """Estimated matmul FLOPs of a whole run: its training steps plus its diagnostics (the
    evaluations, the gradient profiles at the checkpoints and the memory probe's forward)."""
    task = task_for(config)
    gates = ARCHITECTURES.get(config.arch, "grid.arch").gates
    model, diag = config.model, config.diagnostics

    def forward(batch: int) -> float:
        return forward_flops(
            gates,
            task.total_len,
            batch,
            model.hidden_size,
            task.input_size,
            task.output_size,
            model.num_layers,
        )

    total = config.train.steps * 3.0 * forward(config.train.batch_size)
    if diag.enabled:
        passes = diag.checkpoints + 2  # init, the checkpoints, the end
        total += passes * (forward(diag.eval_size) + 3.0 * forward(diag.profile_batch_size))
        total += forward(diag.probe_size)
    else:
        total += forward(diag.eval_size)  # the final evaluation, which decides `solved`
    return total
