"""Sweep files: the grid expands as declared; bad input is one clear line naming the field."""

import tomllib
from pathlib import Path

import pytest

import rnnbench
from rnnbench import ConfigError, load_sweep, parse_sweep
from rnnbench.tasks import task_for
from tests.conftest import TINY_SWEEP

REPO = Path(__file__).resolve().parents[1]


def tiny() -> dict:
    return tomllib.loads(TINY_SWEEP)


def test_grid_is_the_cartesian_product() -> None:
    sweep = parse_sweep(tiny())
    assert len(sweep.runs) == 2 * 2 * 1 * 2 * 1
    assert {(r.task, r.arch, r.clip) for r in sweep.runs} == {
        (t, a, c) for t in ("copy", "adding") for a in ("rnn", "lstm") for c in ("none", "norm:0.5")
    }
    assert len({r.run_id for r in sweep.runs}) == len(sweep.runs)


def test_run_id_is_a_canonical_hash_of_the_config() -> None:
    a = parse_sweep(tiny()).runs[0]
    data = tiny()
    data["name"] = "renamed"
    assert parse_sweep(data).runs[0].run_id == a.run_id  # the sweep's name is not part of it
    data["train"]["lr"] = 0.01
    assert parse_sweep(data).runs[0].run_id != a.run_id


def test_diagnostics_switch_and_stable_run_ids() -> None:
    default = parse_sweep(tiny()).runs
    assert all(r.diagnostics.enabled for r in default)
    # Run ids of existing stores do not change: these were computed before the switch existed.
    assert [r.run_id for r in default[:3]] == [
        "51a48f0bd6f95b4d",
        "40312a4cdbb8d36e",
        "9b03333f55728a2b",
    ]
    data = tiny()
    data["diagnostics"]["enabled"] = True
    assert [r.run_id for r in parse_sweep(data).runs] == [r.run_id for r in default]
    data["diagnostics"]["enabled"] = False
    off = parse_sweep(data).runs
    assert not any(r.diagnostics.enabled for r in off)
    assert {r.run_id for r in off}.isdisjoint(r.run_id for r in default)
    # the stored config round-trips, and a config stored before the switch reads as enabled
    assert rnnbench.RunConfig.from_dict(off[0].to_dict()) == off[0]
    old = default[0].to_dict()
    del old["diagnostics"]["enabled"]
    assert rnnbench.RunConfig.from_dict(old) == default[0]


def test_per_task_overrides() -> None:
    data = tiny()
    data["tasks"] = {
        "adding": {
            "placement": "anywhere",
            "seq_len": [7, 9],
            "model": {"hidden_size": 13},
            "train": {"lr": 0.1},
        }
    }
    runs = parse_sweep(data).runs
    adding = [r for r in runs if r.task == "adding"]
    copy = [r for r in runs if r.task == "copy"]
    assert sorted({r.seq_len for r in adding}) == [7, 9] and {r.seq_len for r in copy} == {5}
    assert {r.model.hidden_size for r in adding} == {13} and {
        r.model.hidden_size for r in copy
    } == {8}
    assert {r.train.lr for r in adding} == {0.1}
    assert task_for(adding[0]).placement == "anywhere"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(colour="red"), r"^colour: unknown key; allowed: name, imports, grid"),
        (
            lambda d: d["grid"].update(arch=["rnn", "transformer"]),
            r"^grid.arch: unknown arch 'transformer'; allowed: gru, gru_ln, lru, lstm, lstm_ln, "
            r"mingru, rnn, rnn_relu",
        ),
        (lambda d: d["grid"].update(clip=["norm:-1"]), r"^grid.clip: threshold must be > 0"),
        (lambda d: d["grid"].update(clip=["max:1"]), r"^grid.clip: expected 'none', 'norm:X'"),
        (lambda d: d["grid"].update(seq_len=[]), r"^grid.seq_len: must list at least one value"),
        (lambda d: d["grid"].update(seq_len=["long"]), r"^grid.seq_len: expected an integer"),
        (lambda d: d["grid"].update(seed=[1, 1]), r"^grid.seed: lists a value twice"),
        (lambda d: d["grid"].pop("task"), r"^grid.task: required"),
        (lambda d: d["train"].update(lr=-1.0), r"^train.lr: must be in \[1e-12, 1000\], got -1.0"),
        (lambda d: d["train"].update(steps="many"), r"^train.steps: expected an integer"),
        (lambda d: d["train"].update(steps=True), r"^train.steps: expected an integer"),
        (
            lambda d: d["train"].update(optimizer="adagrad"),
            r"^train.optimizer: unknown optimizer 'adagrad'; allowed: adam, rmsprop, sgd",
        ),
        (
            lambda d: d["model"].update(hidden=3),
            r"^model.hidden: unknown key; allowed: hidden_size, num_layers, init, init_gain",
        ),
        (
            lambda d: d["model"].update(init="xavier"),
            r"^model.init: unknown init 'xavier'; allowed: default, identity, kaiming_normal, "
            r"orthogonal, xavier_uniform",
        ),
        (
            lambda d: d.update(tasks={"adding": {"placement": "middle"}}),
            r"^tasks.adding.placement: must be one of halves, anywhere",
        ),
        (lambda d: d.update(tasks={"parity": {}}), r"^tasks.parity: not in grid.task"),
        (  # a per-task list is named where it was written, not as grid.seq_len
            lambda d: d.update(tasks={"adding": {"seq_len": [-1]}}),
            r"^tasks\.adding\.seq_len: must be in \[1, 100000\], got -1$",
        ),
        (
            lambda d: d.update(tasks={"adding": {"seq_len": []}}),
            r"^tasks\.adding\.seq_len: must list at least one value$",
        ),
        (lambda d: d.update(imports=["no_such_module_xyz"]), r"^imports: cannot import"),
        (
            lambda d: d["diagnostics"].update(enabled="no"),
            r"^diagnostics.enabled: expected true/false, got 'no'$",
        ),
        (
            lambda d: d["diagnostics"].update(enabled=0),
            r"^diagnostics.enabled: expected true/false, got 0$",
        ),
    ],
)
def test_bad_input_names_the_field(edit, message: str) -> None:
    data = tiny()
    edit(data)
    with pytest.raises(ConfigError, match=message) as info:
        parse_sweep(data)
    assert "\n" not in str(info.value)


def test_shipped_sweep_files_are_valid() -> None:
    for name in ("smoke", "demo", "quick", "modern", "paper"):
        sweep = load_sweep(REPO / "tasks" / f"{name}.toml")
        assert sweep.name == name and sweep.runs
    smoke = load_sweep(REPO / "tasks" / "smoke.toml")
    covered = {(r.task, r.arch, r.clip.split(":")[0]) for r in smoke.runs}
    assert covered == {
        (t, a, c)
        for t in ("copy", "adding")
        for a in ("rnn", "rnn_relu", "lstm", "gru")
        for c in ("none", "norm", "value")
    }
    paper = load_sweep(REPO / "tasks" / "paper.toml")
    assert {r.seq_len for r in paper.runs if r.task == "copy"} == {100, 200, 500, 1000}
    assert {r.seq_len for r in paper.runs if r.task == "adding"} == {100, 200, 400, 750}


def test_the_demo_is_part_of_the_quick_study() -> None:
    """The README's first command trains 36 of the reference study's runs: the same run ids, so
    what the README says of reports/demo is what reports/quick shows at those T."""
    demo = load_sweep(REPO / "tasks" / "demo.toml")
    quick = load_sweep(REPO / "tasks" / "quick.toml")
    assert len(demo.runs) == 36
    assert {r.run_id for r in demo.runs} < {r.run_id for r in quick.runs}


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read sweep file"):
        load_sweep(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_sweep(bad)


def test_hash_neutral_values_are_the_fields_defaults() -> None:
    """A field added after stores existed is left out of the run id at its neutral value; that
    value must be the default, or every run that does not set the field would get a new id."""
    import dataclasses

    from rnnbench.config.hashing import HASH_NEUTRAL
    from rnnbench.config.schema import DiagnosticSettings, ModelSettings, TrainSettings

    sections = {"model": ModelSettings, "train": TrainSettings, "diagnostics": DiagnosticSettings}
    for (section, name), neutral in HASH_NEUTRAL.items():
        defaults = {f.name: f.default for f in dataclasses.fields(sections[section])}
        assert defaults[name] == neutral, (section, name)


def test_the_lyapunov_warm_up_must_leave_steps_to_count() -> None:
    from rnnbench.config.schema import DiagnosticSettings

    with pytest.raises(ConfigError, match=r"diagnostics.lyapunov_warmup: must be below .*199"):
        DiagnosticSettings(lyapunov_steps=200, lyapunov_warmup=199)
    assert DiagnosticSettings(lyapunov=0, lyapunov_warmup=500).lyapunov_warmup == 500


def test_a_difference_in_a_field_at_its_default_names_the_default() -> None:
    """The hashed config leaves a field at its neutral default out; the message that names
    the first difference must still say what the other run had (4, not None)."""
    from rnnbench.config.hashing import config_difference

    GRID = {"task": "adding", "arch": "rnn", "seq_len": 5, "clip": "none", "seed": 0}
    on, off = (
        parse_sweep(
            {"name": "d", "grid": {**GRID}, **extra}
        ).runs[0]
        for extra in ({}, {"diagnostics": {"jacobian_top_k": 0}})
    )
    assert config_difference(on.to_dict(), off.to_dict()) == "diagnostics.jacobian_top_k: 4 -> 0"
