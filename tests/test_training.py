"""The training loop: clipping really clips, divergence is data, runs are deterministic."""

import math

import pytest
import torch

import rnnbench
from rnnbench.config import parse_sweep
from rnnbench.training import CLIPPERS, execute_run, train_run


def run_config(**overrides: object) -> rnnbench.RunConfig:
    grid = {"task": "adding", "arch": "rnn", "seq_len": 8, "clip": "none", "seed": 0}
    sections: dict = {
        "model": {"hidden_size": 8},
        "train": {"steps": 10, "batch_size": 8},
        "diagnostics": {
            "checkpoints": 1,
            "eval_size": 32,
            "profile_batch_size": 8,
            "probe_max_lag": 3,
            "probe_size": 16,
        },
    }
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            sections[section][field] = value
        else:
            grid[key] = value
    return parse_sweep({"name": "t", "grid": grid, **sections}).runs[0]


def one_update(clip: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameters before and after one training step of the loop's clipper + SGD."""
    task = rnnbench.make_task("adding", seq_len=8)
    model = rnnbench.make_model("rnn", task, hidden_size=8, init="identity", init_gain=3.0)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    task.loss(model(batch.x), batch).backward()
    params = list(model.parameters())
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    spec = rnnbench.config.ClipSpec.parse(clip)
    CLIPPERS.get(spec.mode)(params, spec.threshold, total)
    torch.optim.SGD(params, lr=1.0).step()
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return before, after


def test_norm_clipping_changes_the_applied_update() -> None:
    before, unclipped = one_update("none")
    _, clipped = one_update("norm:0.01")
    assert (unclipped - before).norm() > 0.02  # the raw step is larger than the clip
    assert float((clipped - before).norm()) == pytest.approx(0.01, rel=1e-4)


def test_value_clipping_bounds_every_component() -> None:
    before, unclipped = one_update("none")
    _, clipped = one_update("value:0.001")
    assert (unclipped - before).abs().max() > 0.001
    assert float((clipped - before).abs().max()) == pytest.approx(0.001, rel=1e-5)


def test_clipping_changes_the_trajectory_and_is_recorded() -> None:
    plain = train_run(run_config(clip="none"))
    clipped = train_run(run_config(clip="norm:0.01"))
    assert plain["clipped_fraction"] == 0.0
    assert clipped["clipped_fraction"] == 1.0  # every pre-clip norm exceeds 0.01
    assert clipped["curves"]["loss"]["value"] != plain["curves"]["loss"]["value"]
    # the recorded norm is the pre-clip norm, identical at step 0 for both
    assert clipped["curves"]["grad_norm"]["value"][0] == plain["curves"]["grad_norm"]["value"][0]
    assert clipped["max_grad_norm"] > 0.01


def test_a_diverging_run_is_data() -> None:
    config = run_config(
        arch="rnn_relu",
        model__init="identity",
        model__init_gain=3.0,
        train__lr=10.0,
        train__optimizer="sgd",
        train__steps=50,
        seq_len=40,
    )
    record = execute_run(config)
    assert record["status"] == "diverged"
    assert 0 <= record["diverged_step"] < 50
    assert record["steps"] == record["diverged_step"]
    assert record["solved"] is False and math.isnan(record["final_loss"])
    assert len(record["curves"]["loss"]["value"]) == record["diverged_step"]


def test_a_raising_run_is_recorded_as_error() -> None:
    config = run_config(arch="lstm", model__init="identity")
    broken = rnnbench.config.RunConfig.from_dict({**config.to_dict(), "arch": "no_such_arch"})
    record = execute_run(broken)
    assert record["status"] == "error"
    assert "no_such_arch" in record["error"]


def test_record_has_the_documented_fields() -> None:
    record = train_run(run_config(task="copy", arch="gru", clip="value:0.5"))
    for field in (
        "run_id",
        "task",
        "arch",
        "seq_len",
        "clip",
        "seed",
        "status",
        "steps",
        "final_loss",
        "baseline_loss",
        "normalized_loss",
        "solved",
        "grad_factor",
        "grad_span",
        "memory_capacity",
        "probe_span",
        "max_grad_norm",
        "clipped_fraction",
        "diverged_step",
        "wall_s",
    ):
        assert field in record, field
    assert record["status"] == "ok" and record["steps"] == 10
    assert record["normalized_loss"] == pytest.approx(
        record["final_loss"] / record["baseline_loss"]
    )
    assert [p["step"] for p in record["profiles"]] == [0, 5, 10]
    assert len(record["profiles"][0]["norms"]) == 8 + 20  # T + 20
    assert set(record["param_stats"][0]["grad_norm"]) == {
        n
        for n, _ in rnnbench.make_model(
            "gru", rnnbench.make_task("copy", seq_len=5)
        ).named_parameters()
    }
    assert len(record["probe"]["r2"]) == 3
    assert record["env"]["threads"] == torch.get_num_threads()


def test_same_config_gives_bitwise_identical_results() -> None:
    config = run_config(arch="lstm", clip="norm:1.0", train__steps=15)
    first, second = train_run(config), train_run(config)
    assert first["metrics"]["trajectory_hash"] == second["metrics"]["trajectory_hash"]
    assert first["final_loss"] == second["final_loss"]
    assert first["profiles"][-1]["norms"] == second["profiles"][-1]["norms"]
    other_seed = train_run(run_config(arch="lstm", clip="norm:1.0", train__steps=15, seed=1))
    assert other_seed["metrics"]["trajectory_hash"] != first["metrics"]["trajectory_hash"]


def test_global_rng_is_untouched() -> None:
    state = torch.random.get_rng_state()
    train_run(run_config())
    assert torch.equal(torch.random.get_rng_state(), state)
