"""The training loop: clipping really clips, divergence is data, runs are deterministic."""

import json
import math
from pathlib import Path

import pytest
import torch

import rnnbench
import rnnbench.training.loop
from rnnbench.report import build_report
from rnnbench.results.store import Store, load_results
from rnnbench.sweep import parse_sweep
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


def diverging_config(**overrides: object) -> rnnbench.RunConfig:
    """A ReLU RNN at identity init and SGD lr 2 that diverges part-way through its 60 steps
    (between steps 8 and 45), not at the first one."""
    return run_config(
        arch="rnn_relu",
        model__init="identity",
        train__lr=2.0,
        train__optimizer="sgd",
        train__steps=60,
        seq_len=20,
        **overrides,
    )


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


@pytest.mark.parametrize("block", [8, 50])
def test_divergence_checked_in_blocks_is_located_exactly(
    monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # The GPU path reads the per-step values every 50 steps; run that block logic on the CPU
    # and check it writes the record per-step checking writes: the same step, curves, and no
    # checkpoint (profile, parameter norms) taken of the non-finite model after the bad step.
    # checkpoints every 5 steps: some fall in the block after the bad step
    config = diverging_config(diagnostics__checkpoints=11)
    per_step = train_run(config)
    monkeypatch.setattr(rnnbench.training.loop, "_check_interval", lambda device: block)
    blocked = train_run(config)
    assert per_step["status"] == "diverged" and 8 < per_step["diverged_step"] < 45
    assert per_step["diverged_step"] % block != block - 1  # inside a block, not at its end
    assert max(p["step"] for p in per_step["profiles"]) <= per_step["diverged_step"]

    def comparable(record: dict) -> str:
        return json.dumps({k: v for k, v in record.items() if k not in ("wall_s", "env")})

    assert comparable(blocked) == comparable(per_step)
    # the norm of the step that diverged is kept (one more point than the loss curve)
    assert len(per_step["curves"]["grad_norm"]["value"]) == per_step["diverged_step"] + 1


def test_diagnostics_off_trains_the_same_run_and_still_stores_and_reports(tmp_path: Path) -> None:
    on_config = run_config(arch="lstm", clip="norm:1.0", train__steps=12)
    off_config = run_config(
        arch="lstm", clip="norm:1.0", train__steps=12, diagnostics__enabled=False
    )
    assert off_config.run_id != on_config.run_id  # a different run: its record lacks the profiles
    on, off = train_run(on_config), train_run(off_config)
    # Diagnostics never touch the training state or its random streams.
    assert off["metrics"]["trajectory_hash"] == on["metrics"]["trajectory_hash"]
    for field in ("status", "steps", "final_loss", "normalized_loss", "accuracy", "solved"):
        assert off[field] == on[field], field
    for field in ("curves", "max_grad_norm", "clipped_fraction", "baseline_loss"):
        assert off[field] == on[field], field
    assert off["profiles"] == [] and off["param_stats"] == [] and off["probe"] == {"r2": []}
    for field in ("grad_factor", "grad_factor_init", "memory_capacity"):
        assert math.isnan(off[field]), field
    assert off["grad_span"] is None and off["grad_span_init"] is None and off["probe_span"] is None

    stores = {"on": tmp_path / "on.db", "off": tmp_path / "off.db"}
    for name, record in (("on", on), ("off", off)):
        with Store(stores[name]) as store:
            store.record_run(record)
    row = load_results(stores["off"]).set_index("run_id").loc[off["run_id"]]
    assert row["status"] == "ok" and row["final_loss"] == off["final_loss"]
    assert math.isnan(row["grad_factor"]) and math.isnan(row["memory_capacity"])
    assert bool(row["solved"]) == off["solved"]
    # A report comparing both: the run without profiles adds gaps, not errors. (In one store
    # the two would be refused: a group of two configurations, seed 0 twice.)
    index = build_report(list(stores.values()), tmp_path / "report", labels=list(stores))
    assert "Gradient norm through time" in index.read_text(encoding="utf-8")


def test_a_report_of_runs_without_diagnostics_only(tmp_path: Path) -> None:
    config = run_config(train__steps=4, diagnostics__enabled=False)
    db = tmp_path / "runs.db"
    with Store(db) as store:
        store.record_run(train_run(config))
    index = build_report([db], tmp_path / "report")
    assert "No data: no finished run recorded this quantity." in index.read_text(encoding="utf-8")


class _DelayLine(torch.nn.Module):
    """h_t = (x_t, x_{t-1}, ..., x_{t-depth+1}): a network that remembers exactly ``depth - 1``
    steps back and nothing beyond, so its probe must say so."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth
        self.unused = torch.nn.Parameter(torch.zeros(1))  # the probe reads the device from it

    def core(self, x: torch.Tensor) -> torch.Tensor:
        shifted = [
            torch.nn.functional.pad(x, (0, 0, k, 0))[:, : x.shape[1]] for k in range(self.depth)
        ]
        return torch.cat(shifted, dim=-1)


@pytest.mark.parametrize("task_name", ["copy", "adding"])
def test_memory_probe_measures_what_a_delay_line_remembers(task_name: str) -> None:
    from rnnbench.diagnostics.memory import memory_probe

    task = rnnbench.make_task(task_name, seq_len=40)
    probe = memory_probe(
        _DelayLine(depth=6),  # type: ignore[arg-type]
        task,
        torch.Generator().manual_seed(0),
        max_lag=12,
        size=256,
        ridge=1e-6,
    )
    assert len(probe.r2) == 12
    assert all(r > 0.99 for r in probe.r2[:5]), probe.r2  # lags 1..5 are in the state
    assert all(r < 0.1 for r in probe.r2[5:]), probe.r2  # i.i.d. inputs beyond it are not
    assert probe.probe_span == 5
    assert probe.memory_capacity == pytest.approx(sum(probe.r2)) and 4.9 < probe.memory_capacity < 6
