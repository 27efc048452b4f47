"""The stability gate end to end (reliability test 7) and the pytest plugin.

Planted regressions are *code* changes, made the way a user's change would arrive: a module the
sweep imports (``imports = ["planted"]``, loaded in every worker) either does nothing (the
unchanged code), silently stops norm clipping (the bug this project once had: clipping the
gradient tensors instead of the parameters clips nothing), or scales the recurrent weights up
at initialisation.  The sweep file is byte-identical across all of them, so the configuration
hash matches and `compare` has to find the difference in the training itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import REPO, exploding_sweep, rnnbench_cli

from rnnbench.gate.calibrate import false_alarms
from rnnbench.results.store import Store

pytest_plugins = ["pytester"]

NOTHING = "# the unchanged code\n"
CLIP_LOST = """
# planted: norm clipping silently does nothing
from rnnbench.training.optim import CLIPPERS, _clip_none
CLIPPERS.remove("norm")
CLIPPERS.add("norm", _clip_none)
"""
SCALED_UP = """
# planted: the recurrent weights start 1.5x larger
from rnnbench.models.init import INITS, _init_identity
INITS.remove("identity")
INITS.add("identity", lambda w, n, gain, g: _init_identity(w, n, 1.5 * gain, g))
"""


def gate_sweep(seeds: range = range(8)) -> str:
    """tasks/regression.toml, its clipped group only (the one a lost clip breaks), importing
    the planted module."""
    text = (REPO / "tasks" / "regression.toml").read_text()
    text, n_clip = re.subn(r"(?m)^clip = \[.*\]$", 'clip = ["norm:1.0"]', text)
    text, n_seed = re.subn(r"(?m)^seed = \[.*\]$", f"seed = {list(seeds)}", text)
    text, n_name = re.subn(
        r'(?m)^name = "regression"$', 'name = "regression"\nimports = ["planted"]', text
    )
    assert n_clip == n_seed == n_name == 1
    return text


def run_variant(root: Path, name: str, planted: str, seeds: range = range(8)) -> Path:
    """Run the gate sweep with ``planted`` as the imported module; returns the store."""
    folder = root / name
    folder.mkdir()
    (folder / "planted.py").write_text(planted)
    (folder / "sweep.toml").write_text(gate_sweep(seeds))
    store = folder / "results.db"
    done = rnnbench_cli("run", str(folder / "sweep.toml"), "--store", str(store))
    assert done.returncode == 0, done.stderr
    return store


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    store = run_variant(root, "baseline", NOTHING)
    baseline = root / "baseline.json"
    saved = rnnbench_cli("baseline", "save", "--store", str(store), "--out", str(baseline))
    assert saved.returncode == 0, saved.stderr
    return {"root": root, "baseline": baseline, "baseline_store": store}


def compare(gate: dict[str, Path], store: Path, *args: str) -> tuple[int, dict]:
    done = rnnbench_cli(
        "compare", str(gate["baseline"]), "--store", str(store), "--format", "json", *args
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def marked(result: dict) -> dict[str, str]:
    return {row["metric"]: row["mark"] for row in result["rows"] if row["mark"]}


def test_an_unchanged_rerun_passes_bit_for_bit(gate) -> None:
    store = run_variant(gate["root"], "unchanged", NOTHING)
    code, result = compare(gate, store, "--exact")
    assert code == 0 and result["verdict"] == "ok"
    assert marked(result) == {}  # every row blank, trajectories identical
    assert [r["current"] for r in result["rows"] if r["metric"] == "trajectory"] == ["identical"]


def test_planted_loss_of_clipping_fails_the_gate(gate) -> None:
    code, result = compare(gate, run_variant(gate["root"], "clip_lost", CLIP_LOST))
    print("\n" + result["summary"])
    assert code == 1
    assert marked(result)["normalized_loss"] == "+"
    loss = next(r for r in result["rows"] if r["metric"] == "normalized_loss")
    assert float(loss["current"]) > 0.4 > float(loss["baseline"])


def test_planted_weight_scaling_fails_the_gate(gate) -> None:
    code, result = compare(gate, run_variant(gate["root"], "scaled", SCALED_UP))
    print("\n" + result["summary"])
    assert code == 1
    marks = marked(result)
    # the explosion shows in the pre-clip gradient norm, and the training never recovers
    assert marks["max_grad_norm"] == "+" and marks["normalized_loss"] == "+"


def test_false_alarm_rate_over_independent_reruns(gate) -> None:
    """Unchanged code, fresh seeds: the gate's false alarms where runs are not bit-identical
    (another machine); every block of 8 seeds is compared with every other."""
    stores = [gate["baseline_store"]] + [
        run_variant(gate["root"], f"reseed{k}", NOTHING, range(8 * k, 8 * k + 8)) for k in (1, 2)
    ]
    records = []
    for store in stores:
        with Store(store, readonly=True) as db:
            records += db.runs()
    failing, pairs, marks = false_alarms(records, block_size=8, blocks=3)
    print(
        f"\nfalse alarms: {failing}/{pairs} comparisons of independent re-runs; "
        f"changed-within-noise marks: {sum(n for (_, m), n in marks.items() if m == '~')}"
    )
    assert pairs == 6
    assert failing == 0


# --- the pytest plugin ------------------------------------------------------------------------

# Stable only because of norm clipping; the planted module removes it.
PLUGIN_SWEEP = exploding_sweep("plugin", clip="norm:1.0", imports="planted")


def readme_block(marker: str, language: str) -> str:
    """The fenced ``language`` block of the README that contains ``marker``."""
    blocks = (REPO / "README.md").read_text().split(f"```{language}\n")[1:]
    return next(block.split("```")[0] for block in blocks if marker in block)


def test_pytest_plugin_creates_accepts_and_gates(pytester: pytest.Pytester) -> None:
    # The README's example test file, verbatim, against a cheap sweep placed at the path it
    # names (tasks/regression.toml itself takes ~40 s per run of the sweep).
    (pytester.path / "tasks").mkdir()
    (pytester.path / "tasks" / "regression.toml").write_text(PLUGIN_SWEEP)
    (pytester.path / "tasks" / "planted.py").write_text(NOTHING)
    pytester.makepyfile(test_stability=readme_block("rnnbench_stability(", "python"))

    # --rnnbench-workers 0: the sweep trains inside the pytest process (no worker start-up)
    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "--rnnbench-workers", "0", *args
        )

    missing = run()
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*no baseline at*--rnnbench-update-baseline*"])

    update = run("--rnnbench-update-baseline", "-s")
    update.assert_outcomes(passed=1)
    update.stdout.fnmatch_lines(["*baseline written to*baseline.json*"])
    baseline = pytester.path / "reports" / "baseline.json"
    assert json.loads(baseline.read_text())["sweep"]["name"] == "plugin"

    run().assert_outcomes(passed=1)  # unchanged code passes

    (pytester.path / "tasks" / "planted.py").write_text(CLIP_LOST)
    regressed = run()
    regressed.assert_outcomes(failed=1)
    regressed.stdout.fnmatch_lines(
        ["*!*0/8*8/8*adding T=20 rnn_relu clip=norm:1 · diverged*", "*REGRESSION:*"]
    )
    assert "Traceback" not in regressed.stdout.str()  # the table is the whole message


def test_the_plugin_costs_nothing_until_its_fixture_is_used() -> None:
    # pytest loads it in every session of an environment with rnnbench installed
    import subprocess
    import sys

    check = "import sys, rnnbench.pytest_plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
