"""The gate's messages point where the user can go (issue: nothing silently wrong)."""

from __future__ import annotations

import pytest

from rnnbench.errors import ConfigError
from rnnbench.gate import Baseline, compare
from tests.test_gate import NOTHING, PLUGIN_SWEEP
from tests.test_regression import runs

pytest_plugins = ["pytester"]


def test_a_changed_row_shows_the_digits_that_differ() -> None:
    # before: "~  554.2  554.2": two different medians printed as the same number
    base = Baseline.from_records(runs(8, grad=lambda s: 554.21 + s * 1e-3))
    result = compare(base, runs(8, grad=lambda s: 554.23 + s * 1e-3))
    (row,) = [r for r in result.rows if r.metric == "max_grad_norm"]
    assert row.mark == "~" and row.baseline != row.current
    assert (row.baseline, row.current) == ("554.21", "554.23")


def test_a_store_of_another_sweep_says_so_first() -> None:
    base = Baseline.from_records(runs(8))
    others = [{**r, "sweep": "other", "seq_len": 50} for r in runs(8)]
    with pytest.raises(ConfigError) as refused:
        compare(base, others)
    assert str(refused.value).startswith("the runs are of sweep 'other', the baseline of 's': ")


def _project(pytester: pytest.Pytester, test_body: str) -> None:
    (pytester.path / "tasks").mkdir()
    (pytester.path / "tasks" / "regression.toml").write_text(PLUGIN_SWEEP)
    (pytester.path / "tasks" / "planted.py").write_text(NOTHING)
    pytester.makepyfile(test_stability=test_body)


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--rnnbench-workers", "0", *args)


GATE = """
def test_gate(rnnbench_stability):
    rnnbench_stability("tasks/regression.toml", baseline="reports/baseline.json"{extra})
"""


@pytest.mark.slow
def test_the_fixture_says_what_it_wrote_and_takes_allow_config_change(
    pytester: pytest.Pytester,
) -> None:
    _project(pytester, GATE.format(extra=""))
    # before: the line was printed inside the test, so output capture hid it without -s
    update = _run(pytester, "--rnnbench-update-baseline")
    update.assert_outcomes(passed=1)
    update.stdout.fnmatch_lines(["*rnnbench baselines written*", "*baseline written to*"])
    # change the configuration: refused, in one message without a chained traceback
    sweep = pytester.path / "tasks" / "regression.toml"
    sweep.write_text(sweep.read_text().replace("hidden_size = 16", "hidden_size = 17"))
    refused = _run(pytester)
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(
        ["*configuration differs*model.hidden_size: 16 -> 17*"
         "--rnnbench-allow-config-change or allow_config_change=True*"]
    )
    assert "During handling of the above exception" not in refused.stdout.str()
    assert "Traceback" not in refused.stdout.str()
    # the option the refusal names exists on the fixture, as a flag and as a keyword
    _run(pytester, "--rnnbench-allow-config-change").assert_outcomes(passed=1)
    (pytester.path / "test_stability.py").write_text(
        GATE.format(extra=", allow_config_change=True")
    )
    _run(pytester).assert_outcomes(passed=1)


def test_a_truncated_baseline_reads_in_plain_words(tmp_path) -> None:
    from rnnbench.gate import load_baseline

    path = tmp_path / "b.json"
    path.write_text('{"format": "rnnbench-baseline", "sweep": "unterminated')
    with pytest.raises(ConfigError) as refused:
        load_baseline(path)
    assert "at at" not in str(refused.value)  # before: "starting at at line 1"
    assert "Unterminated string starting at line 1 column" in str(refused.value)


def test_spans_of_a_sweep_with_no_runs_in_the_store_says_so(tmp_path, capsys) -> None:
    from rnnbench.cli import main
    from tests.conftest import TINY_SWEEP

    sweep, other = tmp_path / "tiny.toml", tmp_path / "other.toml"
    sweep.write_text(TINY_SWEEP)
    other.write_text(TINY_SWEEP.replace("seq_len = [5]", "seq_len = [6]"))
    store = tmp_path / "r.db"
    assert main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["spans", "--store", str(store), "--sweep", str(other)]) == 0
    assert capsys.readouterr().out.strip() == f"(no runs of {other} in the store)"
