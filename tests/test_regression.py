"""The stability gate on synthetic run records: exact tests, marks, refusals, baseline files."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnbench.errors import ConfigError
from rnnbench.gate import (
    BASELINE_VERSION,
    Baseline,
    compare,
    holm,
    load_baseline,
)
from rnnbench.gate.stats import fisher_greater, mann_whitney_greater, midranks

CONFIG = {"task": "adding", "arch": "rnn", "seq_len": 20, "clip": "norm:1.0", "train": {"lr": 0.01}}
ENV = {
    "rnnbench": "0.1.0",
    "torch": "2.13.0",
    "python": "3.11",
    "platform": "linux",
    "device": "cpu",
    "device_name": "x86_64",
    "threads": 1,
    "git_revision": "a" * 40,
}


def record(
    seed: int,
    *,
    loss: float = 0.1,
    status: str = "ok",
    solved: bool = True,
    grad: float = 10.0,
    factor: float = 0.99,
    span: int = 20,
    arch: str = "rnn",
    config: dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    trajectory: str | None = None,
) -> dict[str, Any]:
    cfg = {**CONFIG, "arch": arch, **(config or {}), "seed": seed, "sweep": "s"}
    return {
        "run_id": f"{arch}-{seed}-{json.dumps(config, sort_keys=True)}",
        "sweep": "s",
        "task": cfg["task"],
        "arch": arch,
        "seq_len": cfg["seq_len"],
        "clip": cfg["clip"],
        "seed": seed,
        "status": status,
        "solved": solved and status == "ok",
        "normalized_loss": loss if status == "ok" else math.nan,
        "max_grad_norm": grad,
        "grad_factor": factor,
        "grad_span": span,
        "config": cfg,
        "env": env or ENV,
        "metrics": {"trajectory_hash": trajectory or f"h{seed}"},
        "error": "RuntimeError: boom" if status == "error" else None,
    }


def runs(n: int = 8, start: int = 0, **kwargs: Any) -> list[dict[str, Any]]:
    return [
        record(seed, **{k: (v(seed) if callable(v) else v) for k, v in kwargs.items()})
        for seed in range(start, start + n)
    ]


def marks(result: Any) -> dict[str, str]:
    return {row.metric: row.mark for row in result.rows}


# --- the exact tests ----------------------------------------------------------------------


def test_fisher_matches_the_hypergeometric_tail_by_enumeration() -> None:
    for nb, nc in [(3, 3), (4, 5), (8, 8)]:
        for base_bad, cur_bad in itertools.product(range(nb + 1), range(nc + 1)):
            items = [1] * (base_bad + cur_bad) + [0] * (nb + nc - base_bad - cur_bad)
            picks = list(itertools.combinations(range(nb + nc), nc))
            brute = sum(sum(items[i] for i in p) >= cur_bad for p in picks) / len(picks)
            assert fisher_greater(base_bad, nb, cur_bad, nc) == pytest.approx(brute, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, math.inf]), min_size=1, max_size=6),
    st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, math.inf]), min_size=1, max_size=6),
)
def test_mann_whitney_is_the_exact_permutation_p_value_with_ties(base, cur) -> None:
    ranks = midranks(base + cur)
    observed = ranks[len(base) :].sum()
    picks = list(itertools.combinations(range(len(ranks)), len(cur)))
    brute = sum(ranks[list(p)].sum() >= observed - 1e-9 for p in picks) / len(picks)
    assert mann_whitney_greater(base, cur) == pytest.approx(brute, abs=1e-12)


def test_mann_whitney_large_samples_use_the_normal_approximation_sensibly() -> None:
    base = [float(i) for i in range(40)]
    assert mann_whitney_greater(base, [x + 30 for x in base]) < 1e-6
    assert 0.3 < mann_whitney_greater(base, base[::-1]) < 0.7


def test_holm_controls_the_family_and_is_monotone() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.001] * 100) == pytest.approx([0.1] * 100)


# --- marks --------------------------------------------------------------------------------


def test_an_identical_rerun_is_unchanged_and_passes() -> None:
    base = Baseline.from_records(runs())
    result = compare(base, runs(), exact=True)
    assert result.ok and result.exit_code == 0
    assert set(marks(result).values()) == {" "}
    assert "OK: no stability regression" in result.verdict()


def test_a_worse_loss_on_every_seed_is_a_regression_with_plus() -> None:
    base = Baseline.from_records(runs(loss=lambda s: 0.1 + s / 100))
    result = compare(base, runs(loss=lambda s: 0.6 + s / 100, solved=False))
    assert marks(result)["normalized_loss"] == "+"
    assert marks(result)["solved"] == "+"
    assert result.exit_code == 1
    assert result.verdict().startswith("REGRESSION: 2 of 6 checks worse")
    table = result.table()
    assert "+ " in table and "normalized_loss" in table


def test_newly_diverging_runs_are_marked_bang() -> None:
    base = Baseline.from_records(runs())
    result = compare(base, runs(status=lambda s: "diverged" if s < 7 else "ok"))
    assert marks(result)["diverged"] == "!"
    assert marks(result)["normalized_loss"] == "+"  # a diverged run's loss counts as the worst
    assert not result.ok


def test_an_error_run_always_fails_the_gate() -> None:
    base = Baseline.from_records(runs())
    result = compare(base, [*runs(7), record(7, status="error")])
    status_rows = [r for r in result.rows if r.metric == "status"]
    assert [r.mark for r in status_rows] == ["!"] and "boom" in status_rows[0].note
    assert not result.ok


def test_better_is_minus_and_passes() -> None:
    base = Baseline.from_records(runs(loss=lambda s: 0.6 + s / 100))
    result = compare(base, runs(loss=lambda s: 0.1 + s / 100))
    assert marks(result)["normalized_loss"] == "-"
    assert result.ok


def test_small_or_inconsistent_changes_are_tilde_not_failures() -> None:
    base = Baseline.from_records(runs(loss=lambda s: 0.1 + s / 1000))
    # consistent but tiny (below the 0.05 minimum effect), and large but on one seed only
    tiny = compare(base, runs(loss=lambda s: 0.13 + s / 1000))
    one_seed = compare(base, runs(loss=lambda s: 0.9 if s == 3 else 0.1 + s / 1000))
    for result in (tiny, one_seed):
        assert marks(result)["normalized_loss"] == "~" and result.ok


def test_tolerance_override_makes_the_tiny_change_a_regression() -> None:
    base = Baseline.from_records(runs(loss=lambda s: 0.1 + s / 1000))
    result = compare(
        base, runs(loss=lambda s: 0.13 + s / 1000), tolerances={"normalized_loss": 0.01}
    )
    assert marks(result)["normalized_loss"] == "+"
    with pytest.raises(ConfigError, match=r"unknown metric 'los'; allowed: .*normalized_loss"):
        compare(base, runs(), tolerances={"los": 0.1})


def test_gradient_factor_is_judged_by_its_distance_from_one_both_ways() -> None:
    base = Baseline.from_records(runs(factor=1.0))
    assert marks(compare(base, runs(factor=0.9)))["grad_factor"] == "+"  # vanishing
    assert marks(compare(base, runs(factor=1.1)))["grad_factor"] == "+"  # exploding
    assert (
        marks(compare(Baseline.from_records(runs(factor=0.8)), runs(factor=0.95)))["grad_factor"]
        == "-"
    )


def test_exploding_gradient_norm_and_shrinking_span_are_regressions() -> None:
    base = Baseline.from_records(runs(grad=lambda s: 10.0 + s, span=20))
    result = compare(base, runs(grad=lambda s: 1e4 + s, span=3))
    assert marks(result)["max_grad_norm"] == "+" and marks(result)["grad_span"] == "+"


# --- what is refused, and what is flagged -------------------------------------------------


def test_a_changed_configuration_is_refused_naming_the_field() -> None:
    base = Baseline.from_records(runs())
    changed = runs(config={"train": {"lr": 0.003}})
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.01 -> 0\.003.*--allow-config-change"):
        compare(base, changed)
    allowed = compare(base, changed, allow_config_change=True)
    assert any("configuration differs" in note for note in allowed.notes)


def test_missing_groups_are_refused_and_extra_groups_noted() -> None:
    base = Baseline.from_records(runs() + runs(arch="lstm"))
    with pytest.raises(ConfigError, match=r"no runs for 1 of 2 baseline groups.*lstm"):
        compare(base, runs())
    extra = compare(Baseline.from_records(runs()), runs() + runs(arch="gru"))
    assert any("not in the baseline" in note for note in extra.notes)


def test_a_store_mixing_two_configurations_cannot_become_a_baseline() -> None:
    with pytest.raises(ConfigError, match=r"different configurations \(train\.lr: .*--sweep"):
        Baseline.from_records(runs(4) + runs(4, start=4, config={"train": {"lr": 0.1}}))
    with pytest.raises(ConfigError, match="error"):
        Baseline.from_records([record(0, status="error")])


def test_a_thread_count_difference_is_flagged_not_a_regression() -> None:
    base = Baseline.from_records(runs())
    other_env = {**ENV, "threads": 2}
    # on another thread count the trajectories differ bitwise; the statistics do not
    result = compare(base, runs(env=other_env, trajectory=lambda s: f"other{s}"), exact=True)
    assert result.ok
    assert result.environment_differences == ["threads: 1 -> 2"]
    assert "environment differs" in result.table()
    assert any("--exact" in note for note in result.notes)
    assert all(row.metric != "trajectory" for row in result.rows)


def test_exact_mode_fails_on_different_bits_in_the_same_environment() -> None:
    base = Baseline.from_records(runs())
    result = compare(base, runs(trajectory=lambda s: f"x{s}" if s == 5 else f"h{s}"), exact=True)
    rows = [r for r in result.rows if r.metric == "trajectory"]
    assert [(r.mark, r.current) for r in rows] == [("!", "1 differ")]
    assert not result.ok
    assert compare(base, runs(trajectory=lambda s: f"x{s}")).ok  # not asked: statistics only


def test_different_seeds_are_compared_as_samples_and_noted() -> None:
    result = compare(Baseline.from_records(runs()), runs(start=8))
    assert result.ok and any("seeds differ" in note for note in result.notes)


def test_json_output_is_machine_readable() -> None:
    result = compare(Baseline.from_records(runs()), runs(loss=0.9, solved=False))
    data = json.loads(json.dumps(result.to_json()))
    assert data["verdict"] == "regression" and data["exit_code"] == 1
    assert {"group", "metric", "baseline", "current", "ratio", "p_value", "mark"} <= set(
        data["rows"][0]
    )


# --- the baseline file --------------------------------------------------------------------


def test_baseline_round_trips_and_is_diff_friendly(tmp_path: Path) -> None:
    base = Baseline.from_records(runs(status=lambda s: "diverged" if s == 2 else "ok"))
    path = base.save(tmp_path / "sub" / "baseline.json")
    text = path.read_text()
    assert '"seeds": [0, 1, 2, 3, 4, 5, 6, 7],' in text  # short lists on one line
    assert '"normalized_loss": [0.1, 0.1, null, 0.1' in text  # NaN stored as null
    data = json.loads(text)
    assert data["schema_version"] == BASELINE_VERSION and data["format"] == "rnnbench-baseline"
    loaded = load_baseline(path)
    assert loaded.groups.keys() == base.groups.keys()
    assert compare(loaded, runs(status=lambda s: "diverged" if s == 2 else "ok")).ok
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema_version=BASELINE_VERSION + 1), "newer rnnbench"),
        (lambda d: d.update(format="asv"), "format: expected 'rnnbench-baseline'"),
        (lambda d: d.update(groups=[]), "groups: expected a non-empty list"),
        (lambda d: d["groups"][0].update(seq_len=-3), r"groups\[0\]\.seq_len"),
        (lambda d: d["groups"][0]["values"].update(solved=[1, 0]), r"values\.solved"),
        (lambda d: d["groups"][0].update(status=["ok"] * 7 + ["weird"]), r"groups\[0\]\.status"),
        (lambda d: d["groups"].append(d["groups"][0]), "duplicate group"),
    ],
)
def test_bad_baseline_files_name_the_field(tmp_path: Path, mutate, message: str) -> None:
    data = Baseline.from_records(runs()).to_json()
    mutate(data)
    path = tmp_path / "b.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_baseline(path)


def test_truncated_or_missing_baseline_is_a_clear_error(tmp_path: Path) -> None:
    path = Baseline.from_records(runs()).save(tmp_path / "b.json")
    path.write_text(path.read_text()[:200])
    with pytest.raises(ConfigError, match=r"not valid JSON \(.* at line \d+ column \d+\)"):
        load_baseline(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_baseline(tmp_path / "missing.json")


def test_the_shipped_baseline_still_matches_its_sweep_file() -> None:
    # Fields added to the config later (diagnostics.enabled) must not change a group's hash:
    # otherwise every existing baseline is refused as "configuration differs".
    from rnnbench.config.hashing import group_hash as _config_hash
    from rnnbench.gate import load_baseline
    from rnnbench.sweep import load_sweep

    repo = Path(__file__).resolve().parents[1]
    baseline = load_baseline(repo / "reports" / "regression" / "baseline.json")
    runs = load_sweep(repo / "tasks" / "regression.toml").runs
    assert baseline.groups
    for group in baseline.groups.values():
        members = [
            run
            for run in runs
            if {k: getattr(run, k) for k in ("task", "arch", "seq_len", "clip")} == group.key
        ]
        assert sorted(run.run_id for run in members) == sorted(group.run_ids)
        assert {_config_hash(run.to_dict()) for run in members} == {group.config_hash}
