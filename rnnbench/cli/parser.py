"""The ``rnnbench`` argument parser: one function per command (the handlers are in
``commands``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rnnbench.cli import commands as cmd
from rnnbench.version import __version__

Commands = Any  # argparse's private _SubParsersAction


def _add_run(commands: Commands) -> None:
    """``run``: a sweep file into a store."""
    from rnnbench.execution import EXECUTORS

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
    run.set_defaults(handler=cmd.cmd_run)


def _add_readers(commands: Commands) -> None:
    """``results`` and ``spans``: what a store holds."""
    results = commands.add_parser("results", help="print the runs of a store")
    results.add_argument("--store", required=True, type=Path)
    results.add_argument("--format", choices=["table", "csv", "jsonl"], default="table")
    results.add_argument(
        "--sweep", type=Path, default=None, help="only the runs of this sweep file"
    )
    results.set_defaults(handler=cmd.cmd_results)

    spans = commands.add_parser("spans", help="task span per (task, arch, clip)")
    spans.add_argument("--store", required=True, type=Path)
    spans.add_argument("--sweep", type=Path, default=None, help="only the runs of this sweep file")
    spans.set_defaults(handler=cmd.cmd_spans)


def _add_report(commands: Commands) -> None:
    """``report`` and ``theory``."""
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
    report.set_defaults(handler=cmd.cmd_report)

    theory = commands.add_parser("theory", help="the theory check: products of per-step factors")
    theory.set_defaults(handler=cmd.cmd_theory)


def _add_gate(commands: Commands) -> None:
    """``baseline save`` and ``compare``: the stability gate."""
    baseline = commands.add_parser("baseline", help="stability baselines for `compare`")
    baseline_commands = baseline.add_subparsers(dest="baseline_command", required=True)
    save = baseline_commands.add_parser("save", help="save a store's runs as a baseline file")
    save.add_argument("--store", required=True, type=Path, help="results store to summarise")
    save.add_argument("--out", required=True, type=Path, help="baseline JSON file to write")
    save.add_argument(
        "--sweep", type=Path, default=None, help="only the runs of this sweep file (all required)"
    )
    save.set_defaults(handler=cmd.cmd_baseline_save)

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
        type=cmd.tolerance,
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
    gate.add_argument(
        "--sweep",
        type=Path,
        default=None,
        help="only the runs of this sweep file, as its code is now (all required)",
    )
    gate.add_argument("--format", choices=["table", "json"], default="table")
    gate.add_argument("--only-changed", action="store_true", help="hide unchanged rows")
    gate.set_defaults(handler=cmd.cmd_compare)


def _add_list(commands: Commands) -> None:
    """``list``: what a sweep may name."""
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
    listing.set_defaults(handler=cmd.cmd_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnbench", description="Benchmark recurrent networks on long-range tasks."
    )
    parser.add_argument("--version", action="version", version=f"rnnbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_readers, _add_report, _add_gate, _add_list):
        add(commands)
    return parser
