"""The gate: judge a set of runs against a baseline, one check per (group, metric).

Comparisons that would mix different things are refused (:class:`~rnnbench.errors.ConfigError`,
exit 2) - a group whose configuration differs, groups missing from the runs - or flagged: a
different environment (torch, thread count, device, ...) or different seeds are printed above
the table, and ``exact`` (bitwise trajectory hashes) is only judged when the environment and
seeds are identical. With n seeds per side the smallest attainable p is 1 / C(2n, n): 0.05 at
3 seeds, 0.014 at 4, 0.0002 at 8.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rnnbench.config.hashing import code_difference, config_difference, group_hash
from rnnbench.errors import ConfigError
from rnnbench.gate.baseline import ENV_KEYS, Baseline, Group, groups_from_records, summarize_env
from rnnbench.gate.checks import (
    CORRECTIONS,
    Check,
    Power,
    continuous_check,
    mark,
    rate_check,
)
from rnnbench.gate.metrics import METRICS
from rnnbench.gate.verdict import Comparison, Row
from rnnbench.results.grouping import check_one_configuration, group_key

DEFAULT_ALPHA = 0.05

Records = list[Mapping[str, Any]]


def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[str, Records]]:
    """The records by group, then by configuration hash."""
    index: dict[tuple[Any, ...], dict[str, Records]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        index[group_key(record)][group_hash(record.get("config") or {})].append(record)
    return index


def _environment_differences(base: Mapping[str, Any], cur: Mapping[str, Any]) -> list[str]:
    return [
        f"{key}: {base.get(key)} -> {cur.get(key)}"
        for key in ENV_KEYS
        if base.get(key) != cur.get(key)
    ]


def _revision(env: Mapping[str, Any]) -> str:
    rev = env.get("git_revision")
    return f"git {rev[:10]}" if isinstance(rev, str) else "git ?"


def _seeds(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds)) if len(seeds) <= 6 else f"{seeds[0]}..{seeds[-1]}"


def _min_effects(tolerances: Mapping[str, float] | None) -> dict[str, float]:
    """Each metric's minimum effect, with the user's ``--tolerance`` overrides checked."""
    min_effects = {m.name: m.min_effect for m in METRICS.values()}
    for name, value in (tolerances or {}).items():
        METRICS.get(name, "--tolerance")  # names the allowed metrics on a miss
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"--tolerance {name}: must be a number >= 0, got {value!r}")
        min_effects[name] = float(value)
    return min_effects


def _other_sweep(baseline: Baseline, records: Records) -> str:
    """'' or, where none of the runs is of the baseline's sweep, the words saying so: the first
    thing to know when a comparison is refused."""
    theirs = sorted({str(r.get("sweep")) for r in records})
    ours = baseline.sweep.get("name")
    if not theirs or ours in theirs:
        return ""
    return f"the runs are of sweep {', '.join(map(repr, theirs))}, the baseline of {ours!r}: "


def _select(
    baseline: Baseline,
    records: Records,
    allow_config_change: bool,
    allow_hint: str,
    where: str = "store",
) -> tuple[list[tuple[Group, Records]], list[str]]:
    """The runs of each baseline group (of its configuration), and the notes on what was
    allowed or ignored; refuses a changed configuration or a missing group."""
    index = _index(records)
    notes: list[str] = []
    selected: list[tuple[Group, Records]] = []
    missing: list[str] = []
    edits: Counter[str] = Counter()
    for key, group in baseline.groups.items():
        configs = index.get(key, {})
        runs = configs.get(group.config_hash)
        if runs is None and configs:
            if not allow_config_change or len(configs) > 1:
                other = next(iter(configs.values()))[0].get("config") or {}
                raise ConfigError(
                    f"{_other_sweep(baseline, records)}"
                    f"group {group.label}: the runs' configuration differs from the baseline's "
                    f"({config_difference(group.config, other)}); re-run the baseline's sweep, "
                    f"or pass {allow_hint} to compare anyway"
                )
            runs = next(iter(configs.values()))
            notes.append(f"{group.label}: configuration differs from the baseline (allowed)")
        elif runs is not None and len(configs) > 1:
            notes.append(f"{group.label}: runs of other configurations in the store were ignored")
        if runs is None:
            missing.append(group.label)
            continue
        check_one_configuration(runs, where)  # one version of the user code per group
        edit = code_difference({"code": group.code}, runs[0].get("config") or {})
        if edit:
            edits[edit] += 1
        selected.append((group, runs))
    # an edited cell is what the gate is for: flagged once per edit, not refused
    notes += [
        f"user code changed since the baseline: {edit} (in {n} of {len(baseline.groups)} groups)"
        for edit, n in edits.items()
    ]
    if missing:
        raise ConfigError(
            f"{_other_sweep(baseline, records)}"
            f"store: no runs for {len(missing)} of {len(baseline.groups)} baseline groups "
            f"(e.g. {missing[0]}); run the baseline's sweep ({baseline.sweep.get('name')}) "
            "into the store first"
        )
    extra = [k for k in index if k not in baseline.groups]
    if extra:
        notes.append(f"{len(extra)} group(s) in the store are not in the baseline; not compared")
    return selected, notes


@dataclass
class _Gathered:
    """What the groups' checks produced, before the marks are set over all of them."""

    checks: list[Check] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)  # errors and bitwise checks: facts
    notes: list[str] = field(default_factory=list)
    skipped_exact: bool = False


def _error_row(group: Group, runs: Records, errors: Records) -> Row:
    return Row(
        group.label,
        "status",
        f"0/{len(group.seeds)}",
        f"{len(errors)}/{len(runs)} error",
        None,
        None,
        "!",
        f"{errors[0].get('error')}",
    )


def _exact_row(group: Group, current: Group) -> Row:
    differ = sum(
        a != b for a, b in zip(group.trajectory_hash, current.trajectory_hash, strict=True)
    )
    return Row(
        group.label,
        "trajectory",
        f"{len(group.seeds)} runs",
        f"{differ} differ" if differ else "identical",
        None,
        None,
        "!" if differ else " ",
        "not bit-identical on the same environment" if differ else "",
    )


def _check_group(
    group: Group,
    runs: Records,
    min_effects: Mapping[str, float],
    exact: bool,
    same_env: bool,
    out: _Gathered,
) -> None:
    """Add one group's checks (and its error and bitwise rows) to ``out``."""
    errors = [r for r in runs if r.get("status") == "error"]
    finished = [r for r in runs if r.get("status") != "error"]
    if errors:
        out.rows.append(_error_row(group, runs, errors))
    if not finished:
        return
    current = groups_from_records(finished)[group_key(group.key)]
    same_seeds = current.seeds == group.seeds
    if not same_seeds:
        out.notes.append(
            f"{group.label}: seeds differ (baseline {_seeds(group.seeds)}, "
            f"current {_seeds(current.seeds)}); compared as samples"
        )
    for metric in METRICS.values():
        base, cur = group.values[metric.name], current.values[metric.name]
        if metric.kind == "rate":
            out.checks.append(rate_check(metric, group.label, base, cur, min_effects[metric.name]))
        else:
            out.checks.append(
                continuous_check(
                    metric,
                    group.label,
                    base,
                    cur,
                    min_effects[metric.name],
                    same_seeds,
                    int(group.key["seq_len"]),
                )
            )
    if exact and same_env and same_seeds:
        out.rows.append(_exact_row(group, current))
    elif exact:
        out.skipped_exact = True


def _baseline_info(baseline: Baseline) -> str:
    return (
        f"sweep {baseline.sweep.get('name')} ({baseline.sweep.get('runs')} runs, "
        f"{len(baseline.groups)} groups), rnnbench {baseline.rnnbench_version}, "
        f"{_revision(baseline.environment)}, saved {baseline.created_at}"
    )


def _power(gathered: _Gathered, alpha: float, correction: str, allowed: bool, hint: str) -> Power:
    """What the checks can see; refuses (or, ``allowed``, warns) where nothing could be
    detected. Facts still see without statistics: bitwise trajectories (--exact on the same
    environment and seeds) and runs that errored."""
    power = Power.of(gathered.checks, alpha, correction)
    if power.checks and power.blind == power.checks and not gathered.rows:
        line = power.blind_line(alpha, correction)
        if not allowed:
            raise ConfigError(f"{line} (or pass {hint} to compare anyway)")
        gathered.notes.append(f"warning: {line}")
    return power


def _check_options(alpha: float, correction: str) -> None:
    if not (0 < alpha < 1):
        raise ConfigError(f"--alpha: must be between 0 and 1, got {alpha!r}")
    if correction not in CORRECTIONS:
        raise ConfigError(
            f"--correction: must be one of {', '.join(CORRECTIONS)}, got {correction!r}"
        )


def compare(
    baseline: Baseline,
    records: Iterable[Mapping[str, Any]],
    *,
    alpha: float = DEFAULT_ALPHA,
    exact: bool = False,
    allow_config_change: bool = False,
    tolerances: Mapping[str, float] | None = None,
    correction: str = "holm",
    current_name: str = "current runs",
    allow_hint: str = "--allow-config-change",
    allow_underpowered: bool = False,
    underpowered_hint: str = "--allow-underpowered",
) -> Comparison:
    """Judge ``records`` (run records, e.g. ``Store.runs()``) against ``baseline``.

    Raises :class:`ConfigError` for comparisons that would mix different things (see the
    module docstring); otherwise returns a :class:`Comparison` whose ``exit_code`` is 0 or 1.
    ``allow_hint`` is how the refusal of a changed configuration names the way to allow it
    (the CLI's flag; the pytest fixture's differ).

    A gate whose seeds cannot reach ``alpha`` in any check after the correction would print
    "OK" whatever happened: it is refused unless ``allow_underpowered`` (a warning then).
    """
    _check_options(alpha, correction)
    min_effects = _min_effects(tolerances)
    records = list(records)
    selected, notes = _select(
        baseline, records, allow_config_change, allow_hint, f"store {current_name}"
    )
    current_records = [r for _, runs in selected for r in runs]
    current_env = summarize_env(r.get("env") for r in current_records)
    env_diffs = _environment_differences(baseline.environment, current_env)
    gathered = _Gathered(notes=notes)
    for group, runs in selected:
        _check_group(group, runs, min_effects, exact, not env_diffs, gathered)
    power = _power(gathered, alpha, correction, allow_underpowered, underpowered_hint)
    rows = mark(gathered.checks, alpha, correction) + gathered.rows
    rows.sort(key=lambda row: row.group)  # stable: each group's metrics stay in order
    if gathered.skipped_exact:
        gathered.notes.append(
            "--exact: bitwise comparison needs the same environment and seeds; skipped where "
            "they differ (statistical gate only)"
        )
    return Comparison(
        rows=rows,
        alpha=alpha,
        exact=exact,
        correction=correction,
        baseline_info=_baseline_info(baseline),
        current_info=f"{current_name} ({len(current_records)} runs), {_revision(current_env)}",
        environment_differences=env_diffs,
        notes=gathered.notes,
        checked=power.checks,
        blind=power.blind,
    )
