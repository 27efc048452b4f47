"""No global state: importing rnnbench, running a sweep in-process or building a report leaves
the caller's process as it was. Each test failed before its fix."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import rnnbench
from rnnbench.cli import main
from rnnbench.registry import import_plugins
from tests.conftest import TINY_SWEEP


def test_building_a_report_leaves_the_matplotlib_backend_alone(tmp_path: Path) -> None:
    # before: importing the report switched every caller to Agg (matplotlib.use at import),
    # which broke plotting in notebooks
    script = textwrap.dedent(
        f"""
        import matplotlib
        matplotlib.use("pdf")
        import rnnbench
        sweep = {str(tmp_path / "s.toml")!r}
        rnnbench.run_sweep(sweep, {str(tmp_path / "r.db")!r}, workers=0)
        from rnnbench.report import build_report
        build_report([{str(tmp_path / "r.db")!r}], {str(tmp_path / "rep")!r})
        print(matplotlib.get_backend())
        """
    )
    (tmp_path / "s.toml").write_text(TINY_SWEEP)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "pdf"
    assert (tmp_path / "rep" / "figures" / "learning_curves.png").stat().st_size > 1000


def test_a_sweeps_imports_leave_sys_path_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "leftover_plugin.py").write_text("VALUE = 1\n")
    monkeypatch.delitem(sys.modules, "leftover_plugin", raising=False)
    before = list(sys.path)
    import_plugins(["leftover_plugin"], tmp_path)
    assert sys.modules["leftover_plugin"].VALUE == 1
    assert sys.path == before
    sys.modules.pop("leftover_plugin")


def test_a_plugin_of_the_same_name_from_another_sweep_folder_is_imported_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ray worker is reused across sweeps: it must not hand a later sweep the module that an
    # earlier sweep's folder put in sys.modules under the same name.
    monkeypatch.delitem(sys.modules, "same_name_plugin", raising=False)
    for folder, value in (("first", 1), ("second", 2)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same_name_plugin.py").write_text(f"VALUE = {value}\n")
    import_plugins(["same_name_plugin"], tmp_path / "first")
    assert sys.modules["same_name_plugin"].VALUE == 1
    import_plugins(["same_name_plugin"], tmp_path / "second")
    assert sys.modules["same_name_plugin"].VALUE == 2
    import_plugins(["same_name_plugin"], tmp_path / "second")  # same folder: kept, not reloaded
    assert sys.modules["same_name_plugin"].VALUE == 2
    sys.modules.pop("same_name_plugin")


def test_the_cli_puts_the_callers_sigterm_handler_back() -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert main(["list"]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_in_process_sweep_leaves_torch_threads_as_they_were(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TINY_SWEEP)
    before = torch.get_num_threads()
    rnnbench.run_sweep(tmp_path / "s.toml", tmp_path / "r.db", workers=0, threads=1)
    assert torch.get_num_threads() == before
