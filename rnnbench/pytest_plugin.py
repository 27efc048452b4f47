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
    ) -> Comparison | None:
        """Run ``sweep`` and gate it against ``baseline`` (paths relative to the rootdir).

        Returns the :class:`~rnnbench.gate.verdict.Comparison` (``None`` after updating the
        baseline); fails the test on a regression, a missing baseline or bad input.
        """
        from rnnbench.errors import RnnbenchError
        from rnnbench.execution.runner import run_sweep
        from rnnbench.gate.baseline import Baseline, load_baseline
        from rnnbench.gate.compare import compare
        from rnnbench.results.store import Store
        from rnnbench.sweep import load_sweep

        option = self._config.getoption
        sweep_path, baseline_path = self._path(sweep), self._path(baseline)
        update = bool(option("--rnnbench-update-baseline"))
        try:
            if not update and not baseline_path.exists():
                pytest.fail(
                    f"rnnbench: no baseline at {baseline_path}; create it with "
                    "`pytest --rnnbench-update-baseline` (and commit it)",
                    pytrace=False,
                )
            loaded = None if update else load_baseline(baseline_path)  # bad file: fail early
            plan = load_sweep(sweep_path)
            store_path = self._path(store) if store else self._workdir / f"{plan.name}.db"
            workers = workers if workers is not None else option("--rnnbench-workers")
            summary = run_sweep(plan, store_path, workers=workers)
            wanted = {run.run_id for run in plan.runs}
            with Store(store_path, readonly=True) as results:
                records = [r for r in results.runs() if r["run_id"] in wanted]
            if loaded is None:
                Baseline.from_records(records, sweep_name=plan.name).save(baseline_path)
                print(f"rnnbench: baseline written to {baseline_path} ({summary.line()})")
                return None
            result = compare(
                loaded,
                records,
                alpha=alpha,
                exact=bool(option("--rnnbench-exact")) if exact is None else exact,
                tolerances=tolerances,
                current_name=f"{sweep_path.name} -> {store_path}",
            )
        except RnnbenchError as exc:
            pytest.fail(f"rnnbench: {exc}", pytrace=False)
        if not result.ok:
            pytest.fail(result.table(only_changed=True), pytrace=False)
        return result


@pytest.fixture
def rnnbench_stability(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """``rnnbench_stability(sweep, baseline, *, store=None, workers=None, exact=None,
    alpha=0.05, tolerances=None)``: run a sweep and fail the test if its training stability
    regressed against the baseline (see :mod:`rnnbench.pytest_plugin`)."""
    return StabilityGate(request.config, tmp_path_factory.mktemp("rnnbench"))
