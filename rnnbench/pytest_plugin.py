"""pytest plugin (entry point ``pytest11``): gate training stability from a test.

.. code-block:: python

    def test_my_cell_trains_stably(rnnbench_stability):
        rnnbench_stability("tasks/regression.toml", baseline="reports/baseline.json")

The fixture runs the sweep (resumably, into a store under pytest's temporary directory unless
``store=`` names one), compares it with the baseline and fails the test with the comparison
table when stability regressed.  ``pytest --rnnbench-update-baseline`` writes the baseline from
the runs instead - the deliberate way to accept a change.  A missing baseline fails with the
command that creates it; it is never created silently, or a CI run would always pass.

Nothing heavy is imported until the fixture is used, so the plugin costs nothing in test
sessions that do not use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rnnbench.errors import RnnbenchError

if TYPE_CHECKING:
    from rnnbench.gate.verdict import Comparison


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rnnbench", "rnnbench training-stability gate")
    group.addoption(
        "--rnnbench-update-baseline",
        action="store_true",
        default=False,
        help="write the rnnbench_stability baselines from this run instead of comparing",
    )
    group.addoption(
        "--rnnbench-workers",
        type=int,
        default=None,
        help="worker processes for rnnbench_stability sweeps (default: one per core)",
    )
    group.addoption(
        "--rnnbench-exact",
        action="store_true",
        default=False,
        help="also require bit-identical trajectories (same machine as the baseline)",
    )
    group.addoption(
        "--rnnbench-allow-underpowered",
        action="store_true",
        default=False,
        help="gate even where the seeds cannot reach alpha in any check (warns)",
    )
    group.addoption(
        "--rnnbench-allow-config-change",
        action="store_true",
        default=False,
        help="compare groups whose configuration differs from the baseline's (flagged)",
    )


#: What ``--rnnbench-update-baseline`` wrote in this session, reported in the terminal summary
#: (a print from inside a test is swallowed by pytest's output capture).
_WRITTEN = pytest.StashKey[list[str]]()


class StabilityGate:
    """The callable behind the ``rnnbench_stability`` fixture."""

    def __init__(self, config: pytest.Config, workdir: Path) -> None:
        self._config = config
        self._workdir = workdir

    def _path(self, path: str | Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else Path(self._config.rootpath) / path

    def __call__(
        self,
        sweep: str | Path,
        baseline: str | Path,
        *,
        store: str | Path | None = None,
        workers: int | None = None,
        exact: bool | None = None,
        alpha: float = 0.05,
        tolerances: dict[str, float] | None = None,
        allow_config_change: bool | None = None,
        allow_underpowered: bool | None = None,
    ) -> Comparison | None:
        """Run ``sweep`` and gate it against ``baseline`` (paths relative to the rootdir).

        Returns the :class:`~rnnbench.gate.verdict.Comparison` (``None`` after updating the
        baseline); fails the test on a regression, a missing baseline or bad input.
        """
        option = self._config.getoption
        settings = {
            "workers": workers if workers is not None else option("--rnnbench-workers"),
            "exact": bool(option("--rnnbench-exact")) if exact is None else exact,
            "alpha": alpha,
            "tolerances": tolerances,
            "allow_config_change": (
                bool(option("--rnnbench-allow-config-change"))
                if allow_config_change is None
                else allow_config_change
            ),
            "allow_underpowered": (
                bool(option("--rnnbench-allow-underpowered"))
                if allow_underpowered is None
                else allow_underpowered
            ),
        }
        try:
            result = self._gate(self._path(sweep), self._path(baseline), store, settings)
        except RnnbenchError as exc:
            problem = f"rnnbench: {exc}"
        else:
            if result is None or result.ok:
                return result
            problem = result.table(only_changed=True)
        # outside the except block: no "During handling of the above exception" chain
        pytest.fail(problem, pytrace=False)

    def _gate(
        self, sweep_path: Path, baseline_path: Path, store: str | Path | None, settings: dict
    ) -> Comparison | None:
        from rnnbench.execution.runner import run_sweep
        from rnnbench.gate.baseline import Baseline, load_baseline
        from rnnbench.gate.compare import compare
        from rnnbench.results.store import Store
        from rnnbench.sweep import load_sweep

        update = bool(self._config.getoption("--rnnbench-update-baseline"))
        if not update and not baseline_path.exists():
            # never created silently, or a CI run would always pass
            raise RnnbenchError(
                f"no baseline at {baseline_path}; create it with "
                "`pytest --rnnbench-update-baseline` (and commit it)"
            )
        loaded = None if update else load_baseline(baseline_path)  # bad file: fail early
        plan = load_sweep(sweep_path)
        store_path = self._path(store) if store else self._workdir / f"{plan.name}.db"
        summary = run_sweep(plan, store_path, workers=settings["workers"])
        wanted = {run.run_id for run in plan.runs}
        with Store(store_path, readonly=True) as results:
            records = [r for r in results.runs() if r["run_id"] in wanted]
        if loaded is None:
            written = Baseline.from_records(records, sweep_name=plan.name)
            written.save(baseline_path)
            lines = [f"rnnbench: baseline written to {baseline_path} ({summary.line()})"]
            warning = written.power_warning(settings["alpha"])
            lines += [f"rnnbench: warning: {warning}"] if warning else []
            self._config.stash.setdefault(_WRITTEN, []).extend(lines)
            print("\n".join(lines))  # shown with -s; the terminal summary shows it either way
            return None
        return compare(
            loaded,
            records,
            alpha=settings["alpha"],
            exact=settings["exact"],
            tolerances=settings["tolerances"],
            allow_config_change=settings["allow_config_change"],
            current_name=f"{sweep_path.name} -> {store_path}",
            allow_hint="--rnnbench-allow-config-change or allow_config_change=True",
            allow_underpowered=settings["allow_underpowered"],
            underpowered_hint="--rnnbench-allow-underpowered or allow_underpowered=True",
        )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN, [])
    if written:
        terminalreporter.section("rnnbench baselines written")
        for line in written:
            terminalreporter.write_line(line)


@pytest.fixture
def rnnbench_stability(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """``rnnbench_stability(sweep, baseline, *, store=None, workers=None, exact=None,
    alpha=0.05, tolerances=None)``: run a sweep and fail the test if its training stability
    regressed against the baseline (see :mod:`rnnbench.pytest_plugin`)."""
    return StabilityGate(request.config, tmp_path_factory.mktemp("rnnbench"))
