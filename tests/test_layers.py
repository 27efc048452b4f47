"""The layers as a user meets them: the commands that read a store run without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rnnbench.cli import main
from tests.helpers import cli_env

#: Runs the CLI in a fresh interpreter in which ``import torch`` raises ImportError, so any
#: command that reaches for torch fails instead of passing while merely slow.
NO_TORCH = """
import sys
sys.modules["torch"] = None
from rnnbench.cli import main
code = main(sys.argv[1:])
sys.exit(code)
"""


def without_torch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )


@pytest.fixture(scope="module")
def store_and_baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import TINY_SWEEP

    root = tmp_path_factory.mktemp("layers")
    sweep = root / "tiny.toml"
    sweep.write_text(TINY_SWEEP)
    store, baseline = root / "r.db", root / "baseline.json"
    assert main(["run", str(sweep), "--store", str(store), "--workers", "0", "--no-progress"]) == 0
    assert main(["baseline", "save", "--store", str(store), "--out", str(baseline)]) == 0
    return store, baseline


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["results", "--format", "table"], "lstm"),
        (["results", "--format", "csv"], "run_id,task,arch"),
        (["results", "--format", "jsonl"], '"status": "ok"'),
        (["spans"], "task_span"),
        (["compare", "BASELINE"], "OK: no stability regression"),
    ],
)
def test_reading_commands_run_without_torch(
    store_and_baseline: tuple[Path, Path], args: list[str], expected: str
) -> None:
    store, baseline = store_and_baseline
    args = [str(baseline) if a == "BASELINE" else a for a in args]
    done = without_torch(*args, "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_the_torch_block_is_real() -> None:
    # the same harness fails a command that needs torch: the test above can fail
    done = without_torch("list")
    assert done.returncode != 0 and "torch" in done.stderr
