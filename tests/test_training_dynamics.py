"""The training loop records the dynamics diagnostics, each switch turns its own off, and none of
them changes what trains."""

import math

import pytest

import rnnbench
from rnnbench.sweep import parse_sweep
from rnnbench.training import train_run

OFF = {"jacobian_top_k": 0, "lyapunov": 0, "saturation": False, "task_probe": False}


def config(arch: str, task: str = "adding", **diagnostics: object) -> rnnbench.RunConfig:
    sweep = {
        "name": "dyn",
        "grid": {"task": task, "arch": arch, "seq_len": 8, "clip": "none", "seed": 0},
        "model": {"hidden_size": 8},
        "train": {"steps": 12, "batch_size": 8},
        "diagnostics": {
            "checkpoints": 1,
            "eval_size": 32,
            "profile_batch_size": 8,
            "probe_max_lag": 3,
            "probe_size": 16,
            "jacobian_batch": 4,
            "lyapunov_steps": 40,
            "lyapunov_warmup": 10,
            "task_probe_size": 64,
            **diagnostics,
        },
    }
    return parse_sweep(sweep).runs[0]


def test_an_lstm_run_records_every_dynamics_diagnostic() -> None:
    record = train_run(config("lstm"))
    assert record.status == "ok"
    for name in (
        "jacobian_sigma1",
        "jacobian_sigma1_init",
        "jacobian_expanding",
        "lyapunov_max",
        "lyapunov_max_init",
        "gate_saturation",
        "tanh_saturation",
        "forget_gate",
        "forget_gate_init",
    ):
        assert math.isfinite(record[name]), name
    assert 0 < record.forget_gate < 1 and 0 <= record.jacobian_expanding <= 1
    assert record.task_memory_span is not None and record.task_memory_needed is not None
    spectra = record.dynamics
    assert len(spectra["lyapunov"]) == len(spectra["lyapunov_init"]) == 8
    assert spectra["lyapunov"][0] == record.lyapunov_max
    assert spectra["task_probe"]["metric"] == "r2" and spectra["task_probe"]["delays"][0] == 0
    first, last = record.profiles[0], record.profiles[-1]
    for entry in (first, last):
        assert len(entry["sigma"]) == 7 and all(len(row) == 4 for row in entry["sigma"])
        assert len(entry["sigma_hh"]) == 7  # the LSTM's h -> h block beside (h, c)
        assert len(entry["cell_norms"]) == len(entry["norms"]) == 8
        assert len(entry["gate_saturation"]) == len(entry["forget_gate"]) == 8
    assert record.jacobian_sigma1_init == first["sigma1_gmean"]


def test_a_gru_has_no_forget_gate_and_a_copy_run_probes_its_symbols() -> None:
    record = train_run(config("gru", task="copy"))
    assert math.isnan(record.forget_gate) and math.isfinite(record.gate_saturation)
    assert "cell_norms" not in record.profiles[-1] and "sigma_hh" not in record.profiles[-1]
    probe = record.dynamics["task_probe"]
    assert probe["metric"] == "accuracy" and probe["chance"] == pytest.approx(1 / 8)
    assert record.task_memory_needed == 8 + 10  # copy reads each symbol T + 10 steps later


@pytest.mark.parametrize("arch", ["rnn", "lstm", "mingru"])
def test_the_switches_turn_the_dynamics_off_and_leave_training_alone(arch: str) -> None:
    on = train_run(config(arch))
    off = train_run(config(arch, **OFF))
    assert on.metrics["trajectory_hash"] == off.metrics["trajectory_hash"]
    assert on.final_loss == off.final_loss
    for name in ("jacobian_sigma1", "lyapunov_max", "gate_saturation", "tanh_saturation"):
        assert math.isnan(off[name]), name
    assert off.task_memory_span is None and off.dynamics == {
        "lyapunov_init": None,
        "lyapunov": None,
        "task_probe": None,
    }
    assert "sigma" not in off.profiles[-1] and "gate_saturation" not in off.profiles[-1]
    assert math.isfinite(on.lyapunov_max) and on.task_memory_span is not None
    # the gradient profiles stay: only the dynamics are switched off
    assert off.profiles[-1]["input_norms"] == on.profiles[-1]["input_norms"]


def test_one_switch_leaves_the_others_on() -> None:
    record = train_run(config("gru", lyapunov=0))
    assert math.isnan(record.lyapunov_max) and math.isfinite(record.jacobian_sigma1)
    assert record.task_memory_span is not None and math.isfinite(record.gate_saturation)


def test_a_bad_switch_value_is_one_line() -> None:
    with pytest.raises(rnnbench.ConfigError, match=r"^diagnostics.saturation: expected true/false"):
        config("rnn", saturation=1)
    with pytest.raises(rnnbench.ConfigError, match=r"diagnostics.lyapunov_warmup: must be below"):
        config("rnn", lyapunov_warmup=39)


def test_the_dynamics_are_taken_at_every_checkpoint_or_at_init_and_end_only() -> None:
    ends = train_run(config("rnn", dynamics_at_checkpoints=False))
    every = train_run(config("rnn"))
    assert [("sigma" in p) for p in ends.profiles] == [True, False, True]
    assert [("gate_saturation" in p) for p in every.profiles] == [True, True, True]
    assert ends.profiles[-1]["sigma"] == every.profiles[-1]["sigma"]
