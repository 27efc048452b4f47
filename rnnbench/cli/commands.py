"""The handlers of the ``rnnbench`` commands: each reads its parsed arguments, calls the
Python API and returns the exit code (:mod:`rnnbench.cli`)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from rnnbench.config.hashing import code_version
from rnnbench.errors import ConfigError

#: The order ``rnnbench results`` lists runs in: the grid's, whatever order they finished in.
RUN_ORDER = ("sweep", "task", "arch", "seq_len", "clip", "seed")
#: Columns of ``rnnbench results`` (the full record is in ``--format jsonl``).
SUMMARY_COLUMNS = [
    "run_id",
    "task",
    "arch",
    "seq_len",
    "clip",
    "seed",
    "status",
    "parameters",
    "steps",
    "final_loss",
    "baseline_loss",
    "normalized_loss",
    "accuracy",
    "solved",
    "grad_factor_init",
    "grad_factor",
    "grad_span",
    "input_factor_init",
    "input_factor",
    "input_span",
    "jacobian_sigma1_init",
    "jacobian_sigma1",
    "lyapunov_max_init",
    "lyapunov_max",
    "gate_saturation",
    "task_memory_span",
    "task_memory_needed",
    "memory_capacity",
    "probe_span",
    "max_grad_norm",
    "clipped_fraction",
    "diverged_step",
    "wall_s",
    "error",
]


def cmd_run(args: argparse.Namespace) -> int:
    from rnnbench.execution.runner import run_sweep
    from rnnbench.sweep import load_sweep

    if args.address is not None and args.executor != "ray":
        raise ConfigError("--address: only with --executor ray")
    sweep = load_sweep(args.sweep)  # validated before the store is touched
    if args.report and args.report.exists() and not args.report.is_dir():
        raise ConfigError(f"--report: {args.report} is a file; give a folder for the report")
    progress = None if args.no_progress else sys.stderr
    summary = run_sweep(
        sweep,
        args.store,
        workers=args.workers,
        threads=args.threads,
        device=args.device,
        progress=progress,
        executor=args.executor,
        address=args.address,
    )
    print(summary.line())
    if args.report:
        from rnnbench.report.build import build_report

        # this sweep's runs: the store may also hold other sweeps', or an edited version's
        out = build_report([args.store], args.report, runs={run.run_id for run in sweep.runs})
        print(f"report: {out}")
    return 0 if summary.ok else 1  # an error run is a failure to report; a diverged one is data


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def cmd_results(args: argparse.Namespace) -> int:
    from rnnbench.results.grouping import axes_of, axis_columns
    from rnnbench.results.store import Store

    wanted = _sweep_runs(args.sweep)
    with Store(args.store, readonly=True) as store:
        frame = store.dataframe()
        records = store.runs() if args.format == "jsonl" else None
    if wanted is not None:
        frame = frame[frame["run_id"].isin(wanted)]
        records = [r for r in records or [] if r["run_id"] in wanted]
    axes = axis_columns(frame["config"])  # the swept fields: a column each, after the seed
    # in grid order, not the order the runs happened to finish in
    if args.format == "jsonl":
        for record in sorted(records or [], key=lambda r: tuple(r[k] for k in RUN_ORDER)):
            swept = axes_of(record)
            flat = record | {
                "parameters": (record.get("metrics") or {}).get("parameters"),
                "code_version": code_version(record.get("config") or {}),
                **{path: swept.get(path) for path in axes},
            }
            print(json.dumps({k: _jsonable(v) for k, v in flat.items()}, default=_jsonable))
        return 0
    frame = frame.sort_values([*RUN_ORDER[:3], *axes, *RUN_ORDER[3:]], kind="stable")
    at = SUMMARY_COLUMNS.index("seed") + 1
    code = ["code_version"] if frame["code_version"].notna().any() else []
    listed = [*SUMMARY_COLUMNS[:at], *axes, *code, *SUMMARY_COLUMNS[at:]]
    _print_runs(frame[[c for c in listed if c in frame.columns]], args.format, axes)
    return 0


def _print_runs(frame: Any, form: str, axes: list[str]) -> None:
    if form == "csv":
        frame.to_csv(sys.stdout, index=False)
        return
    if frame.empty:
        print("(no runs in the store)")
        return
    shown = frame.drop(columns=["run_id", "baseline_loss"]).copy()
    shown["error"] = [_short(e) for e in shown["error"]]
    for path in axes:  # '-': the run's sweep does not vary it (a scoped [grid.archs.NAME] axis)
        shown[path] = [_cell(v) for v in shown[path]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _short(error: object, width: int = 40) -> str:
    """An error message for one table cell ('' for none)."""
    if not isinstance(error, str) or not error:
        return ""
    line = error.splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


def _sweep_runs(sweep_file: Path | None) -> set[str] | None:
    """The run ids of ``--sweep FILE`` (validated like any sweep file), or None: every run."""
    if sweep_file is None:
        return None
    from rnnbench.sweep import load_sweep

    return {run.run_id for run in load_sweep(sweep_file).runs}


def cmd_spans(args: argparse.Namespace) -> int:
    from rnnbench.results.grouping import load_pooled_runs
    from rnnbench.results.spans import task_spans

    frame = load_pooled_runs(args.store, _sweep_runs(args.sweep))
    if frame.empty:
        print(f"(no runs of {args.sweep} in the store)" if args.sweep else "(no runs in the store)")
        return 0
    spans = task_spans(frame)
    for column in ("task_span", "first_unsolved"):  # sequence lengths: integers, '-' for none
        spans[column] = [("-" if math.isnan(v) else str(int(v))) for v in spans[column]]
    print(spans.to_string(index=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rnnbench.report.build import build_report

    theory = None
    if args.theory:
        from rnnbench.diagnostics.theory import run_theory_check

        theory = run_theory_check()
    index = build_report(
        args.store,
        args.out,
        labels=args.label or None,
        runs=_sweep_runs(args.sweep),
        theory=theory,
    )
    print(f"report: {index}")
    return 0


def cmd_theory(args: argparse.Namespace) -> int:
    from rnnbench.diagnostics.theory import theory_text

    print(theory_text())
    return 0


def _select_runs(store_path: Path, sweep_file: Path | None) -> list[dict[str, Any]]:
    """The store's runs, or only those of ``sweep_file`` (all of which must be there)."""
    from rnnbench.results.store import Store

    with Store(store_path, readonly=True) as store:
        records = store.runs()
    wanted = _sweep_runs(sweep_file)
    if wanted is None:
        return records
    chosen = [r for r in records if r["run_id"] in wanted]
    if len(chosen) < len(wanted):
        raise ConfigError(
            f"--store {store_path}: has {len(chosen)} of the {len(wanted)} runs of "
            f"{sweep_file}; run the sweep to completion first"
        )
    return chosen


def cmd_baseline_save(args: argparse.Namespace) -> int:
    from rnnbench.gate.baseline import Baseline

    records = _select_runs(args.store, args.sweep)
    baseline = Baseline.from_records(
        records, sweep_name=args.sweep.stem if args.sweep else None, where=f"--store {args.store}"
    )
    path = baseline.save(args.out)
    print(
        f"baseline: {path} ({len(baseline.groups)} groups, {baseline.sweep['runs']} runs, "
        f"sweep hash {baseline.sweep['hash']})"
    )
    warning = baseline.power_warning()
    if warning:
        print(f"rnnbench: warning: {warning}", file=sys.stderr)
    return 0


def tolerance(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected METRIC=VALUE (e.g. normalized_loss=0.1), got {text!r}"
        ) from None


def cmd_compare(args: argparse.Namespace) -> int:
    from rnnbench.gate.baseline import load_baseline
    from rnnbench.gate.compare import compare

    baseline = load_baseline(args.baseline)
    records = _select_runs(args.store, args.sweep)
    result = compare(
        baseline,
        records,
        alpha=args.alpha,
        exact=args.exact,
        allow_config_change=args.allow_config_change,
        tolerances=dict(args.tolerance),
        current_name=str(args.store),
        allow_underpowered=args.allow_underpowered,
    )
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.table(only_changed=args.only_changed))
    return result.exit_code


def cmd_list(args: argparse.Namespace) -> int:
    from rnnbench.registry import import_plugins
    from rnnbench.sweep.describe import describe, import_sweep_modules

    if args.sweep is not None:
        import_sweep_modules(args.sweep)
    if args.modules:
        import_plugins(args.modules, Path.cwd())
    print(describe())
    return 0
