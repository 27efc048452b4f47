"""The GPU path, against the CPU: run in a session that has a CUDA device (`pytest
tests/test_cuda.py`); skipped where there is none, as on CI.

What only a GPU can show: the fused cuDNN kernels give the exact gradient profile in IEEE float32
(cuDNN would use TF32 by default, see rnnbench.numerics), a run trains to the CPU's result within
float tolerance, divergence is found with the per-50-step host reads, and worker processes share
the card.
"""

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import rnnbench
from rnnbench.execution.runner import run_sweep
from tests.test_gradients import reference_norms
from tests.test_training import diverging_config, run_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("method", ["probe", "loop"])
@pytest.mark.parametrize("arch", ["rnn", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
def test_the_gpu_profile_is_exact(arch: str, layers: int, method: str) -> None:
    # the CPU test's tolerance (tests/test_gradients.py): TF32's 10-bit products miss it
    task = rnnbench.make_task("copy", seq_len=25)
    model = rnnbench.make_model(
        arch, task, hidden_size=16, num_layers=layers, seed=3, init="orthogonal", init_gain=1.2
    )
    batch = task.sample(8, torch.Generator().manual_seed(1))
    reference = reference_norms(model, task, batch)  # per-step autograd, on the CPU
    ours = rnnbench.gradient_norms_through_time(
        model.to("cuda"), task, batch.to("cuda"), method=method
    )
    assert ours.device.type == "cuda"
    torch.testing.assert_close(ours.cpu(), reference, rtol=1e-4, atol=1e-30)


@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_a_gpu_run_trains_as_the_cpu_run(arch: str) -> None:
    config = run_config(arch=arch, clip="norm:1.0", train__steps=30)
    cpu = rnnbench.training.train_run(config, "cpu")
    gpu = rnnbench.training.train_run(config, "cuda")
    assert gpu["status"] == "ok" and gpu["env"]["device"] == "cuda"
    assert gpu["metrics"]["impl"] == "fused"  # auto is the fused kernel on a GPU
    assert gpu["steps"] == cpu["steps"] == 30
    assert gpu["final_loss"] == pytest.approx(cpu["final_loss"], rel=1e-3)
    for a, b in zip(gpu["profiles"], cpu["profiles"], strict=True):
        assert a["step"] == b["step"]
        torch.testing.assert_close(
            torch.tensor(a["norms"]), torch.tensor(b["norms"]), rtol=1e-2, atol=0
        )


def test_divergence_on_the_gpu_is_located_at_the_cpus_step() -> None:
    config = diverging_config()
    cpu = rnnbench.training.train_run(config, "cpu")
    gpu = rnnbench.training.train_run(config, "cuda")
    assert cpu["status"] == gpu["status"] == "diverged"
    # host reads every 50 steps on the GPU; the step is still the first non-finite one
    assert abs(gpu["diverged_step"] - cpu["diverged_step"]) <= 1
    assert gpu["steps"] == gpu["diverged_step"] and math.isnan(gpu["final_loss"])


def test_worker_processes_share_the_gpu(tmp_path: Path, write_sweep: Callable[..., Path]) -> None:
    sweep = write_sweep()
    records: list[dict] = []
    summary = run_sweep(
        sweep, tmp_path / "r.db", workers=2, device="cuda", on_record=records.append
    )
    assert summary.statuses == {"ok": len(records)} and records
    assert {r["env"]["device"] for r in records} == {"cuda"}
