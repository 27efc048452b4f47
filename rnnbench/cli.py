"""``rnnbench`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a check failed or a run ended in ``error``, 2 bad input (one line on
stderr, nothing written). A diverged run is data: exit 0.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rnnbench.errors import ConfigError, RnnbenchError
from rnnbench.version import __version__

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
    "memory_capacity",
    "probe_span",
    "max_grad_norm",
    "clipped_fraction",
    "diverged_step",
    "wall_s",
    "error",
]


def _cmd_run(args: argparse.Namespace) -> int:
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


def _cmd_results(args: argparse.Namespace) -> int:
    from rnnbench.results.grouping import axes_of, axis_columns
    from rnnbench.results.store import Store

    with Store(args.store, readonly=True) as store:
        frame = store.dataframe()
        records = store.runs() if args.format == "jsonl" else None
    axes = axis_columns(frame["config"])  # the swept fields: a column each, after the seed
    # in grid order, not the order the runs happened to finish in
    if args.format == "jsonl":
        for record in sorted(records or [], key=lambda r: tuple(r[k] for k in RUN_ORDER)):
            flat = record | {
                "parameters": (record.get("metrics") or {}).get("parameters"),
                **{path: axes_of(record).get(path) for path in axes},
            }
            print(json.dumps({k: _jsonable(v) for k, v in flat.items()}, default=_jsonable))
        return 0
    frame = frame.sort_values([*RUN_ORDER[:3], *axes, *RUN_ORDER[3:]], kind="stable")
    at = SUMMARY_COLUMNS.index("seed") + 1
    listed = [*SUMMARY_COLUMNS[:at], *axes, *SUMMARY_COLUMNS[at:]]
    columns = [c for c in listed if c in frame.columns]
    frame = frame[columns]
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    else:
        if frame.empty:
            print("(no runs in the store)")
            return 0
        shown = frame.drop(columns=["run_id", "baseline_loss"]).copy()
        shown["error"] = [_short(e) for e in shown["error"]]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0


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


def _cmd_spans(args: argparse.Namespace) -> int:
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


def _cmd_report(args: argparse.Namespace) -> int:
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


def _cmd_theory(args: argparse.Namespace) -> int:
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


def _cmd_baseline_save(args: argparse.Namespace) -> int:
    from rnnbench.gate.baseline import Baseline

    records = _select_runs(args.store, args.sweep)
    baseline = Baseline.from_records(records, sweep_name=args.sweep.stem if args.sweep else None)
    path = baseline.save(args.out)
    print(
        f"baseline: {path} ({len(baseline.groups)} groups, {baseline.sweep['runs']} runs, "
        f"sweep hash {baseline.sweep['hash']})"
    )
    warning = baseline.power_warning()
    if warning:
        print(f"rnnbench: warning: {warning}", file=sys.stderr)
    return 0


def _tolerance(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected METRIC=VALUE (e.g. normalized_loss=0.1), got {text!r}"
        ) from None


def _cmd_compare(args: argparse.Namespace) -> int:
    from rnnbench.gate.baseline import load_baseline
    from rnnbench.gate.compare import compare

    baseline = load_baseline(args.baseline)
    records = _select_runs(args.store, None)
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


def _cmd_list(args: argparse.Namespace) -> int:
    from rnnbench.registry import import_plugins
    from rnnbench.sweep.describe import describe, import_sweep_modules

    if args.sweep is not None:
        import_sweep_modules(args.sweep)
    if args.modules:
        import_plugins(args.modules, Path.cwd())
    print(describe())
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rnnbench.execution import EXECUTORS

    parser = argparse.ArgumentParser(
        prog="rnnbench", description="Benchmark recurrent networks on long-range tasks."
    )
    parser.add_argument("--version", action="version", version=f"rnnbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a sweep file into a store (resumable)")
    run.add_argument("sweep", type=Path, help="sweep file (TOML), e.g. tasks/smoke.toml")
    run.add_argument("--store", required=True, type=Path, help="SQLite results store")
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per core; 0 = in this process)",
    )
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker (default, or 0: cores / workers; ray: 1 per run)",
    )
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    run.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS.names(),
        help="local: worker processes here (default); ray: a Ray task per run (rnnbench[ray])",
    )
    run.add_argument(
        "--address",
        default=None,
        help="with --executor ray: the cluster to use, e.g. auto or HOST:6379 "
        "(default: a local Ray instance)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar (CI logs)")
    run.add_argument("--report", type=Path, default=None, help="build a report here afterwards")
    run.set_defaults(handler=_cmd_run)

    results = commands.add_parser("results", help="print the runs of a store")
    results.add_argument("--store", required=True, type=Path)
    results.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    results.set_defaults(handler=_cmd_results)

    spans = commands.add_parser("spans", help="task span per (task, arch, clip)")
    spans.add_argument("--store", required=True, type=Path)
    spans.add_argument("--sweep", type=Path, default=None, help="only the runs of this sweep file")
    spans.set_defaults(handler=_cmd_spans)

    report = commands.add_parser("report", help="build an HTML + Markdown comparison report")
    report.add_argument(
        "--store",
        required=True,
        type=Path,
        action="append",
        help="results store; repeat to compare several",
    )
    report.add_argument(
        "--label",
        action="append",
        default=[],
        help="a label per --store, in the same order (default: file names)",
    )
    report.add_argument("--out", required=True, type=Path, help="output folder")
    report.add_argument(
        "--sweep",
        type=Path,
        default=None,
        help="only the runs of this sweep file (needed where a store holds two versions of it)",
    )
    report.add_argument(
        "--theory",
        action="store_true",
        help="add the theory check (the vanishing/exploding arithmetic, computed with torch)",
    )
    report.set_defaults(handler=_cmd_report)

    theory = commands.add_parser("theory", help="the theory check: products of per-step factors")
    theory.set_defaults(handler=_cmd_theory)

    baseline = commands.add_parser("baseline", help="stability baselines for `compare`")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", required=True)
    save = baseline_commands.add_parser("save", help="save a store's runs as a baseline file")
    save.add_argument("--store", required=True, type=Path, help="results store to summarise")
    save.add_argument("--out", required=True, type=Path, help="baseline JSON file to write")
    save.add_argument(
        "--sweep", type=Path, default=None, help="only the runs of this sweep file (all required)"
    )
    save.set_defaults(handler=_cmd_baseline_save)

    gate = commands.add_parser(
        "compare",
        help="gate: compare a store against a baseline (exit 0 ok, 1 regression, 2 bad input)",
    )
    gate.add_argument("baseline", type=Path, help="baseline JSON from `rnnbench baseline save`")
    gate.add_argument("--store", required=True, type=Path, help="results store of the new runs")
    gate.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="family-wise significance level: Holm-corrected over all checks (default 0.05)",
    )
    gate.add_argument(
        "--tolerance",
        type=_tolerance,
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="override a metric's minimum effect size (repeatable)",
    )
    gate.add_argument(
        "--exact",
        action="store_true",
        help="also require bit-identical trajectories (same machine, environment and seeds)",
    )
    gate.add_argument(
        "--allow-config-change",
        action="store_true",
        help="compare groups whose configuration differs from the baseline's (flagged)",
    )
    gate.add_argument(
        "--allow-underpowered",
        action="store_true",
        help="compare even where the seeds cannot reach alpha in any check (warns)",
    )
    gate.add_argument("--format", choices=["table", "json"], default="table")
    gate.add_argument("--only-changed", action="store_true", help="hide unchanged rows")
    gate.set_defaults(handler=_cmd_compare)

    listing = commands.add_parser(
        "list", help="registered tasks and architectures, with their parameters"
    )
    listing.add_argument(
        "--sweep", type=Path, default=None, help="also the user cells and tasks this sweep imports"
    )
    listing.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="also the user cells and tasks MODULE registers (repeatable)",
    )
    listing.set_defaults(handler=_cmd_list)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    on_main = threading.current_thread() is threading.main_thread()
    # SIGTERM (timeout, Slurm, kill) takes the same path as Ctrl-C: queued runs are cancelled,
    # workers stopped, and everything finished so far stays in the store. The caller's
    # handler (main called in-process: a notebook, a test) is put back afterwards.
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main else None
    try:
        return _handle(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _handle(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except RnnbenchError as exc:
        print(f"rnnbench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rnnbench results ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("\nrnnbench: interrupted; finished runs are saved, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
