"""model.impl: the fused kernel and the cell loop compute the same model; auto picks by a rule."""

from __future__ import annotations

import pytest
import torch
from test_training import run_config

import rnnbench
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, register_cell, train_impl
from rnnbench.training import train_run


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("arch", ["rnn", "rnn_relu", "lstm", "gru"])
def test_the_loop_computes_what_the_fused_kernel_computes(arch: str, layers: int) -> None:
    task = rnnbench.make_task("copy", seq_len=15)
    batch = task.sample(6, torch.Generator().manual_seed(1))
    grads = {}
    outputs = {}
    for impl in ("fused", "loop"):
        model = rnnbench.make_model(arch, task, hidden_size=12, num_layers=layers, impl=impl)
        fused_calls: list[int] = []
        model.core.rnn.register_forward_hook(lambda *args, calls=fused_calls: calls.append(1))
        out = model(batch.x)
        assert len(fused_calls) == (impl == "fused")
        task.loss(out, batch).backward()
        outputs[impl] = out.detach()
        grads[impl] = {n: p.grad for n, p in model.named_parameters()}
    # same parameters (the nn module's state dict), same function, different rounding
    torch.testing.assert_close(outputs["loop"], outputs["fused"], rtol=1e-5, atol=1e-6)
    assert grads["loop"].keys() == grads["fused"].keys()
    for name, grad in grads["fused"].items():
        torch.testing.assert_close(grads["loop"][name], grad, rtol=1e-4, atol=1e-6)


def test_auto_takes_the_loop_only_where_it_was_measured_faster() -> None:
    assert train_impl("auto", "cpu", "gru", 128, 190, 1020) == "loop"  # 0.77x
    assert train_impl("auto", "cpu", "rnn_relu", 256, 256, 120) == "loop"  # 0.80x
    assert train_impl("auto", "cpu", "rnn", 128, 256, 70) == "fused"  # 1.00x
    assert train_impl("auto", "cpu", "lstm", 128, 190, 1020) == "fused"  # never faster
    assert train_impl("auto", "cuda", "gru", 256, 256, 1020) == "fused"  # a launch per op per step
    assert train_impl("fused", "cpu", "gru", 256, 256, 1020) == "fused"  # explicit choice stands
    assert train_impl("loop", "cuda", "lstm", 8, 8, 8) == "loop"


def test_auto_keeps_run_ids_and_an_explicit_choice_is_a_different_run() -> None:
    default = run_config()
    assert run_config(model__impl="auto").run_id == default.run_id
    explicit = {run_config(model__impl=impl).run_id for impl in ("loop", "fused")}
    assert len(explicit | {default.run_id}) == 3


def test_the_resolved_impl_is_recorded_and_reruns_are_identical() -> None:
    config = run_config(model__impl="loop", arch="gru")
    first, second = train_run(config), train_run(config)
    assert first["status"] == "ok" and first["metrics"]["impl"] == "loop"
    assert first["metrics"]["trajectory_hash"] == second["metrics"]["trajectory_hash"]
    fused = train_run(run_config(arch="gru"))  # 8 x 8: auto is fused
    assert fused["metrics"]["impl"] == "fused"
    # The loop really trained: the same run rounds differently (step 0's loss is still equal).
    assert fused["metrics"]["trajectory_hash"] != first["metrics"]["trajectory_hash"]


def test_bad_impl_is_refused_naming_the_field_and_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"model\.impl: unknown impl 'cudnn'; allowed: .*fused"):
        run_config(model__impl="cudnn")

    @register_cell("impl_test_cell")
    class Elman(torch.nn.Module):
        def __init__(self, input_size: int, hidden_size: int) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(input_size + hidden_size, hidden_size)

        def init_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> tuple:
            return (torch.zeros(batch, self.linear.out_features, device=device, dtype=dtype),)

        def forward(self, x: torch.Tensor, state: tuple) -> tuple:
            return (torch.tanh(self.linear(torch.cat([x, state[0]], 1))),)

    try:
        with pytest.raises(ConfigError, match=r"model\.impl: 'fused' needs a built-in"):
            run_config(arch="impl_test_cell", model__impl="fused")
        cell = run_config(arch="impl_test_cell")
        assert train_run(cell)["metrics"]["impl"] == "loop"
    finally:
        ARCHITECTURES.remove("impl_test_cell")


def test_a_cell_registered_again_by_a_rerun_notebook_cell_is_accepted() -> None:
    # before: the second run of the cell raised "already registered"
    cell = (
        "import torch, rnnbench\n"
        "@rnnbench.register_cell('rerun_cell')\n"
        "class Elman(torch.nn.Module):\n"
        "    pass\n"
    )
    try:
        for _ in range(2):
            exec(cell, {"__name__": "notebook"})  # a new class object each time
        assert ARCHITECTURES.get("rerun_cell").origin == "notebook.Elman"
    finally:
        ARCHITECTURES.remove("rerun_cell")
