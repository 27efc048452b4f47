"""A gate that cannot see says so: the smallest p its seeds can reach, after the correction."""

from __future__ import annotations

import math

import pytest

from rnnbench.cli import main
from rnnbench.errors import ConfigError
from rnnbench.gate import Baseline, compare
from rnnbench.gate.stats import seeds_needed, smallest_p
from tests.test_regression import runs


def planted_divergence(n: int) -> tuple[Baseline, list[dict]]:
    """Every seed goes from a stable run (normalized loss 0.01) to diverged."""
    base = Baseline.from_records(runs(n, loss=0.01))
    return base, runs(n, status="diverged")


def test_the_smallest_p_is_one_over_the_arrangements() -> None:
    assert smallest_p(4, 4) == pytest.approx(1 / 70)
    assert smallest_p(8, 8) == pytest.approx(1 / 12870)
    # 6 checks (one group): Holm multiplies the smallest by 6, so 4 seeds cannot reach 0.05
    assert 6 * smallest_p(4, 4) == pytest.approx(0.0857, abs=1e-4)
    assert seeds_needed(6, 0.05) == 5 and seeds_needed(1, 0.05) == 4


def test_a_gate_that_cannot_detect_anything_refuses() -> None:
    # reproduced: 0/4 -> 4/4 diverged printed "OK: no stability regression", exit 0
    base, current = planted_divergence(4)
    with pytest.raises(ConfigError) as refused:
        compare(base, current)
    message = str(refused.value)
    assert "cannot detect a regression" in message and "at least 5 seeds" in message
    assert "0.0857" in message and "--allow-underpowered" in message


def test_allow_underpowered_warns_and_counts_the_blind_checks() -> None:
    base, current = planted_divergence(4)
    result = compare(base, current, allow_underpowered=True)
    assert result.blind == 6 and result.ok
    assert "6 of 6 checks cannot reach alpha with these seeds" in result.verdict()
    assert any(note.startswith("warning: the gate cannot detect") for note in result.notes)


def test_with_enough_seeds_the_same_regression_is_caught() -> None:
    base, current = planted_divergence(8)
    result = compare(base, current)
    assert result.blind == 0 and not result.ok
    assert "cannot reach alpha" not in result.verdict()


def test_only_the_blind_checks_are_counted_where_some_can_see() -> None:
    # two groups of different sizes: 8 seeds can reach alpha over 12 checks, 3 cannot
    big = runs(8)
    small = [{**r, "arch": "lstm", "run_id": f"s{r['seed']}", "config": {**r["config"],
              "arch": "lstm"}} for r in runs(3)]
    base = Baseline.from_records(big + small)
    result = compare(base, big + small)
    assert result.blind == 6 and math.isclose(result.alpha, 0.05)
    assert "6 of 12 checks cannot reach alpha with these seeds" in result.verdict()


def test_baseline_save_warns_when_its_seeds_cannot_power_a_gate(tmp_path, capsys) -> None:
    from tests.conftest import TINY_SWEEP

    sweep = tmp_path / "tiny.toml"
    sweep.write_text(TINY_SWEEP)  # one seed per group
    store = tmp_path / "r.db"
    assert main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["baseline", "save", "--store", str(store), "--out", str(tmp_path / "b.json")]) == 0
    err = capsys.readouterr().err
    assert err.startswith("rnnbench: warning: ") and "cannot detect a regression" in err


def test_bitwise_checks_still_see_where_the_statistics_are_blind() -> None:
    base = Baseline.from_records(runs(1))
    result = compare(base, runs(1), exact=True)  # same seeds, same environment: --exact runs
    assert result.ok and result.blind == 6
    changed = runs(1, trajectory=lambda s: "another")
    assert not compare(base, changed, exact=True).ok
