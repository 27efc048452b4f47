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
if "--no-fcntl" in sys.argv:  # a platform without fcntl (Windows): reading needs no lock
    sys.argv.remove("--no-fcntl")
    sys.modules["fcntl"] = None
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
        (["compare", "BASELINE", "--allow-underpowered"], "OK: no stability regression"),
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


@pytest.mark.parametrize(
    "command", [["results"], ["spans"], ["compare", "BASELINE", "--allow-underpowered"]]
)
def test_reading_commands_need_no_fcntl(
    store_and_baseline: tuple[Path, Path], command: list[str]
) -> None:
    store, baseline = store_and_baseline
    args = [str(baseline) if a == "BASELINE" else a for a in command]
    done = without_torch(*args, "--store", str(store), "--no-fcntl")
    assert done.returncode == 0, done.stderr


def test_the_torch_block_is_real() -> None:
    # the same harness fails a command that needs torch: the test above can fail
    done = without_torch("list")
    assert done.returncode != 0 and "torch" in done.stderr


#: The top-level names of the Python API before the package was split into folders: each must
#: still resolve (lazily) from ``rnnbench``.
PUBLIC_NAMES = (
    "ARCHITECTURES", "CLIPPERS", "OPTIMIZERS", "TASKS", "Baseline", "Batch", "ConfigError",
    "RnnbenchError", "RunConfig", "Store", "Sweep", "Task", "__version__", "compare",
    "execute_run", "gradient_norms_through_time", "load_baseline", "load_results", "load_sweep",
    "make_model", "make_task", "memory_probe", "parse_sweep", "register_cell", "run_sweep",
    "summarize_profile", "task_spans", "train_run",
)


def test_every_public_name_still_resolves_from_the_top_level() -> None:
    import rnnbench

    assert set(PUBLIC_NAMES) <= set(rnnbench.__all__)
    for name in rnnbench.__all__:
        assert getattr(rnnbench, name) is not None, name


def test_importing_rnnbench_loads_nothing_heavy() -> None:
    check = (
        "import sys, rnnbench; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rnnbench', 'torch', 'numpy', 'pandas')))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.stdout.strip() == "['rnnbench', 'rnnbench.version']", out.stderr
