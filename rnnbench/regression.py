"""Stability regression testing: a baseline file, and a statistical gate against it.

A *baseline* is a small, versioned JSON file: per group (task, arch, seq_len, clip) the per-seed
values of the stability metrics of a finished sweep, with the configuration hash and the
environment they came from.  :func:`compare` checks a new set of runs against it and marks
each (group, metric) asv-style:

====  ==========================================================================================
mark  meaning
====  ==========================================================================================
``+`` significantly worse (one-sided exact test p < alpha **and** at least the metric's minimum
      effect) - a regression
``!`` newly failing: a run errored, or the group diverges significantly more often than the
      baseline, which never diverged - a regression
``-`` significantly better
``~`` changed, but not beyond noise (p >= alpha or effect below the minimum)
(``` ``) unchanged: the same per-seed values
====  ==========================================================================================

Why two conditions: a p-value alone flags tiny-but-consistent shifts (a loss of 0.010 vs 0.011
over 8 seeds) and an effect size alone flags seed noise; requiring both is what keeps an
unchanged re-run from failing - the false-alarm rate is measured in the test suite.  Rates
(solved, diverged) use Fisher's exact test, continuous metrics the Mann-Whitney U test, both
exact and one-sided (:mod:`rnnbench.stats`).  With n seeds per side the smallest attainable p
is 1 / C(2n, n): 0.05 at 3 seeds, 0.014 at 4, 0.0002 at 8 - use at least 4 seeds.

Comparisons that would mix different things are refused (:class:`~rnnbench.errors.ConfigError`,
exit 2) - a group whose configuration differs, groups missing from the runs, a baseline from a
newer format - or flagged: a different environment (torch, thread count, device, ...) or
different seeds are printed above the table, and ``exact`` (bitwise trajectory hashes) is only
judged when the environment and seeds are identical.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnbench.confighash import canonical_config
from rnnbench.errors import ConfigError
from rnnbench.registry import Registry
from rnnbench.stats import fisher_greater, mann_whitney_greater

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASELINE_FORMAT",
    "BASELINE_VERSION",
    "METRICS",
    "Baseline",
    "Comparison",
    "Metric",
    "Row",
    "compare",
    "load_baseline",
]

BASELINE_FORMAT = "rnnbench-baseline"
BASELINE_VERSION = 1
GROUP_KEYS = ("task", "arch", "seq_len", "clip")
#: Environment fields that must match for bitwise comparison.  ``git_revision`` is expected
#: to differ (it is the change under test) and ``pid`` always does.
ENV_KEYS = ("rnnbench", "torch", "python", "platform", "device", "device_name", "threads")
DEFAULT_ALPHA = 0.05


# --- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One stability metric: how to read it from a run record and when a change matters.

    ``badness`` maps a value to a score where larger is worse; missing and non-finite values
    (every continuous metric of a diverged run) count as the worst.  ``effect(base, cur)`` is
    the worsening in the metric's own units (positive = worse) that must reach ``min_effect``
    for a ``+``.
    """

    name: str
    kind: str  # "rate" (booleans; Fisher) or "continuous" (Mann-Whitney)
    description: str
    min_effect: float
    effect_unit: str
    read: Callable[[Mapping[str, Any]], Any]
    badness: Callable[[float], float] = lambda v: v
    effect: Callable[[list[float], list[float]], float] | None = None
    #: the effect is per time step: multiply it by the sequence length before comparing it with
    #: ``min_effect`` (a per-step factor acts as r**T on the gradient reaching the first step)
    per_step: bool = False


def _median(values: Sequence[float]) -> float:
    finite = sorted(values)
    if not finite:
        return math.nan
    mid = len(finite) // 2
    if len(finite) % 2:
        return finite[mid]
    low, high = finite[mid - 1], finite[mid]
    if math.isinf(low) or math.isinf(high):
        return high if math.isinf(high) else low
    return (low + high) / 2


def _worst(value: Any) -> float:
    """Non-finite or missing values (a diverged run has no final loss) rank as the worst."""
    if value is None:
        return math.inf
    value = float(value)
    return math.inf if math.isnan(value) else value


def _log_distance(r: float) -> float:
    """|log r|: distance of the per-step gradient factor from the edge of stability (r = 1),
    on either side - vanishing (r < 1) and exploding (r > 1) are both worse."""
    r = _worst(r)
    return math.inf if (r <= 0 or math.isinf(r)) else abs(math.log(r))


def _finished(name: str) -> Callable[[Mapping[str, Any]], Any]:
    """Read ``name`` from a run record; a diverged run has no meaningful value (its last
    profile and norm predate the blow-up), so it reads as missing, which ranks as the worst."""
    return lambda record: None if record.get("status") == "diverged" else record.get(name)


def _median_shift(base: list[float], cur: list[float]) -> float:
    return _median(cur) - _median(base)


def _median_ratio(base: list[float], cur: list[float]) -> float:
    b, c = _median(base), _median(cur)
    if b <= 0 or math.isinf(b):
        return math.inf if c > b else 1.0
    return c / b


def _span_drop(base: list[float], cur: list[float]) -> float:
    """Relative drop of the median span (badness is -span, so medians are negated back)."""
    b, c = -_median(base), -_median(cur)
    if math.isinf(b) or b <= 0:
        return 0.0
    return (b - c) / b


METRICS: Registry[Metric] = Registry("metric")
for _metric in (
    Metric(
        "solved",
        "rate",
        "fraction of seeds that solved the task (held-out loss below the task's threshold)",
        min_effect=0.25,
        effect_unit="fewer solved (fraction of seeds)",
        read=lambda r: r.get("status") == "ok" and bool(r.get("solved")),
    ),
    Metric(
        "diverged",
        "rate",
        "fraction of seeds that diverged (non-finite loss or gradient)",
        min_effect=0.25,
        effect_unit="more diverged (fraction of seeds)",
        read=lambda r: r.get("status") == "diverged",
    ),
    Metric(
        "normalized_loss",
        "continuous",
        "held-out loss / memoryless baseline (1 = chance)",
        min_effect=0.05,
        effect_unit="higher median (absolute, in units of the chance loss)",
        read=_finished("normalized_loss"),
        effect=_median_shift,
    ),
    Metric(
        "max_grad_norm",
        "continuous",
        "largest pre-clip global gradient norm during training",
        min_effect=2.0,
        effect_unit="x the baseline median",
        read=_finished("max_grad_norm"),
        effect=_median_ratio,
    ),
    Metric(
        "grad_factor",
        "continuous",
        "per-step gradient factor r after training, judged by |log r| (distance from 1)",
        # T * shift of the median |log r|: the gain r**T across the whole sequence moving by a
        # factor e. Per step that is 0.05 at T=20 but 0.001 at T=1000, where r=0.99 vs 0.96 is
        # the difference between a usable gradient and none (e^-10 vs e^-40).
        min_effect=1.0,
        effect_unit="nats of end-to-end gradient gain (T x shift of the median |log r|)",
        read=_finished("grad_factor"),
        badness=_log_distance,
        effect=_median_shift,
        per_step=True,
    ),
    Metric(
        "grad_span",
        "continuous",
        "task span: steps back the gradient reaches above the float floor, after training",
        min_effect=0.2,
        effect_unit="relative drop of the median",
        read=_finished("grad_span"),
        badness=lambda v: -_worst(v) if math.isfinite(_worst(v)) else math.inf,
        effect=_span_drop,
    ),
):
    METRICS.add(_metric.name, _metric)


# --- the baseline file -----------------------------------------------------------------------


def _group_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration without its seed and sweep name: the same for every seed of a
    group, and different as soon as anything that shapes training differs."""
    return {k: v for k, v in canonical_config(config).items() if k not in ("seed", "sweep")}


def _config_hash(config: Mapping[str, Any]) -> str:
    text = json.dumps(_group_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_label(key: Mapping[str, Any]) -> str:
    return f"{key['task']} T={key['seq_len']} {key['arch']} clip={key['clip']}"


def config_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'train.lr: 0.01 -> 0.003' for the first leaf in which two run configurations differ
    (seed and sweep name aside), or the two hashes."""

    def leaves(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, dict):
            out: dict[str, Any] = {}
            for key, value in data.items():
                out.update(leaves(value, f"{prefix}{key}."))
            return out
        return {prefix.rstrip("."): data}

    a, b = leaves(_group_config(old)), leaves(_group_config(new))
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            return f"{name}: {a.get(name)!r} -> {b.get(name)!r}"
    return f"config hash {_config_hash(old)} -> {_config_hash(new)}"


def check_one_configuration(records: Iterable[Mapping[str, Any]], where: str) -> None:
    """Raise :class:`ConfigError` if a (task, arch, seq_len, clip) group of ``records`` holds
    runs of different configurations (a store filled by two versions of a sweep file, say):
    summaries pool a group's runs as seeds of one configuration, and would silently mix them."""
    first: dict[tuple[Any, ...], tuple[str, Mapping[str, Any]]] = {}  # (hash, config)
    clash: tuple[tuple[Any, ...], Mapping[str, Any]] | None = None
    sweeps: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    for record in records:
        key = tuple(record[k] for k in GROUP_KEYS)
        config = record.get("config") or {}
        sweeps[key].add(str(record.get("sweep")))
        digest = _config_hash(config)
        known = first.setdefault(key, (digest, config))
        if clash is None and known[0] != digest:
            clash = (key, config)
    if clash is not None:
        key, config = clash
        raise ConfigError(
            f"{where}: group {group_label(dict(zip(GROUP_KEYS, key, strict=True)))} holds runs "
            f"of different configurations ({config_difference(first[key][1], config)}; sweeps: "
            f"{', '.join(sorted(sweeps[key]))}); pass --sweep FILE to take one sweep file's runs"
        )


def load_pooled_runs(store: str | Path, runs: Collection[str] | None = None) -> pd.DataFrame:
    """A store's runs (only ``runs``, if given: one sweep file's) for a summary that pools each
    group's runs as seeds (reports, task spans): refused where a group mixes configurations."""
    from rnnbench.store import load_results

    frame = load_results(store)
    if runs is not None:
        frame = frame[frame["run_id"].isin(runs)].reset_index(drop=True)
    check_one_configuration(
        frame[["sweep", *GROUP_KEYS, "config"]].to_dict("records"), f"--store {store}"
    )
    return frame


def _summarize_env(envs: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Per field the value shared by all runs, or the sorted list of distinct values."""
    values: dict[str, set[str]] = defaultdict(set)
    for env in envs:
        for key in (*ENV_KEYS, "git_revision"):
            values[key].add(json.dumps((env or {}).get(key)))
    out: dict[str, Any] = {}
    for key, seen in values.items():
        decoded = sorted((json.loads(v) for v in seen), key=json.dumps)
        out[key] = decoded[0] if len(decoded) == 1 else decoded
    return out


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; read back as missing (= worst)
    return value


@dataclass
class Group:
    key: dict[str, Any]
    config_hash: str
    config: dict[str, Any]
    seeds: list[int]
    run_ids: list[str]
    status: list[str]
    trajectory_hash: list[str | None]
    values: dict[str, list[Any]]

    @property
    def label(self) -> str:
        return group_label(self.key)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.key,
            "config_hash": self.config_hash,
            "config": self.config,
            "seeds": self.seeds,
            "run_ids": self.run_ids,
            "status": self.status,
            "trajectory_hash": self.trajectory_hash,
            "values": {k: [_finite_or_none(v) for v in vs] for k, vs in self.values.items()},
        }


def groups_from_records(records: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], Group]:
    """Group finished runs by (task, arch, seq_len, clip); seeds in ascending order.

    Raises ConfigError when one group mixes configurations (runs of two different sweeps in one
    store): the baseline would silently average over them.
    """
    records = list(records)
    check_one_configuration(records, "the store")
    by_key: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_key[tuple(record[k] for k in GROUP_KEYS)].append(record)
    groups: dict[tuple[Any, ...], Group] = {}
    for key, runs in sorted(by_key.items(), key=lambda item: json.dumps(item[0])):
        runs = sorted(runs, key=lambda r: int(r["seed"]))
        groups[key] = Group(
            key=dict(zip(GROUP_KEYS, key, strict=True)),
            config_hash=_config_hash(runs[0].get("config") or {}),
            config=_group_config(runs[0].get("config") or {}),
            seeds=[int(r["seed"]) for r in runs],
            run_ids=[str(r["run_id"]) for r in runs],
            status=[str(r["status"]) for r in runs],
            trajectory_hash=[(r.get("metrics") or {}).get("trajectory_hash") for r in runs],
            values={m.name: [m.read(r) for r in runs] for m in METRICS.values()},
        )
    return groups


@dataclass
class Baseline:
    """The contents of a baseline file (see :meth:`to_json` for the format)."""

    sweep: dict[str, Any]
    environment: dict[str, Any]
    groups: dict[tuple[Any, ...], Group]
    created_at: str = ""
    rnnbench_version: str = ""

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], sweep_name: str | None = None
    ) -> Baseline:
        from rnnbench import __version__

        records = list(records)
        errors = [r for r in records if r.get("status") == "error"]
        if errors:
            raise ConfigError(
                f"store: {len(errors)} run(s) ended in 'error' (e.g. {errors[0].get('error')!r}); "
                "fix them and re-run the sweep before saving a baseline"
            )
        if not records:
            raise ConfigError("store: no finished runs to make a baseline from")
        groups = groups_from_records(records)
        names = sorted({str(r.get("sweep")) for r in records})
        return cls(
            sweep={
                "name": sweep_name or (names[0] if len(names) == 1 else names),
                "hash": _sweep_hash(groups),
                "runs": len(records),
            },
            environment=_summarize_env(r.get("env") for r in records),
            groups=groups,
            created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            rnnbench_version=__version__,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": BASELINE_FORMAT,
            "schema_version": BASELINE_VERSION,
            "created_at": self.created_at,
            "rnnbench": self.rnnbench_version,
            "sweep": self.sweep,
            "environment": self.environment,
            "metrics": {m.name: m.description for m in METRICS.values()},
            "groups": [group.to_json() for group in self.groups.values()],
        }

    def dumps(self) -> str:
        """Diff-friendly JSON: sorted keys, one field per line, lists of scalars on one line."""
        text = json.dumps(self.to_json(), indent=2, sort_keys=True, allow_nan=False)
        return _SCALAR_LIST.sub(_join_list, text) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"--out: {path} is a folder; give the baseline file's path")
        if path.parent.exists() and not path.parent.is_dir():
            raise ConfigError(f"--out: {path.parent} is a file, not a folder")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps(), encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves a half-written baseline behind
        return path


_SCALAR_LIST = re.compile(r'\[\n(?: *(?:-?[0-9.eE+-]+|true|false|null|"[^"\n]*"),?\n)+ *\]')


def _join_list(match: re.Match[str]) -> str:
    lines = match.group(0).splitlines()[1:-1]
    return "[" + ", ".join(line.strip().rstrip(",") for line in lines) + "]"


def _sweep_hash(groups: Mapping[tuple[Any, ...], Group]) -> str:
    lines = sorted(f"{json.dumps(g.key, sort_keys=True)} {g.config_hash}" for g in groups.values())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


# --- reading a baseline back: every field checked, one clear line on the first problem --------


def _expect(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        shown = json.dumps(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise ConfigError(f"{where}: expected {what}, got {shown}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _parse_group(data: Any, where: str) -> Group:
    _expect(isinstance(data, dict), where, "an object", data)
    for name, check, what in (
        ("task", lambda v: isinstance(v, str) and v, "a task name"),
        ("arch", lambda v: isinstance(v, str) and v, "an architecture name"),
        ("seq_len", lambda v: _is_int(v) and v > 0, "a positive integer"),
        ("clip", lambda v: isinstance(v, str) and v, "a clip spec such as 'norm:1.0'"),
        ("config_hash", lambda v: isinstance(v, str) and v, "a hash string"),
    ):
        _expect(name in data and bool(check(data[name])), f"{where}.{name}", what, data.get(name))
    seeds = data.get("seeds")
    _expect(
        isinstance(seeds, list) and bool(seeds) and all(_is_int(s) and s >= 0 for s in seeds),
        f"{where}.seeds",
        "a non-empty list of seeds (integers >= 0)",
        seeds,
    )
    n = len(seeds)
    from rnnbench.store import RUN_STATUSES

    lists = (
        ("run_ids", lambda v: isinstance(v, str) and v, "run ids"),
        ("status", lambda v: v in RUN_STATUSES, f"statuses ({', '.join(RUN_STATUSES)})"),
        ("trajectory_hash", lambda v: v is None or isinstance(v, str), "hashes or null"),
    )
    for name, check, what in lists:
        value = data.get(name)
        _expect(
            isinstance(value, list) and len(value) == n and all(check(v) for v in value),
            f"{where}.{name}",
            f"a list of {n} {what}",
            value,
        )
    config = data.get("config", {})
    _expect(isinstance(config, dict), f"{where}.config", "an object", config)
    values = data.get("values")
    _expect(isinstance(values, dict), f"{where}.values", "an object of metric lists", values)
    parsed: dict[str, list[Any]] = {}
    for metric in METRICS.values():
        column = values.get(metric.name)
        if metric.kind == "rate":
            ok = isinstance(column, list) and all(isinstance(v, bool) for v in column)
            what = f"a list of {n} true/false values"
        else:
            ok = isinstance(column, list) and all(v is None or _is_number(v) for v in column)
            what = f"a list of {n} numbers (null for missing)"
        _expect(ok and len(column) == n, f"{where}.values.{metric.name}", what, column)
        parsed[metric.name] = [math.nan if v is None else v for v in column]
    return Group(
        key={k: data[k] for k in GROUP_KEYS},
        config_hash=data["config_hash"],
        config=dict(config),
        seeds=list(seeds),
        run_ids=list(data["run_ids"]),
        status=list(data["status"]),
        trajectory_hash=list(data["trajectory_hash"]),
        values=parsed,
    )


def parse_baseline(data: Any, where: str = "baseline") -> Baseline:
    _expect(isinstance(data, dict), where, "a JSON object (an rnnbench baseline file)", data)
    _expect(
        data.get("format") == BASELINE_FORMAT,
        f"{where}.format",
        f"{BASELINE_FORMAT!r} (is this an rnnbench baseline?)",
        data.get("format"),
    )
    version = data.get("schema_version")
    _expect(
        _is_int(version) and version >= 1, f"{where}.schema_version", "an integer >= 1", version
    )
    if version > BASELINE_VERSION:
        raise ConfigError(
            f"{where}.schema_version: {version} was written by a newer rnnbench; this version "
            f"reads schema_version <= {BASELINE_VERSION} - upgrade rnnbench"
        )
    sweep = data.get("sweep")
    _expect(
        isinstance(sweep, dict) and isinstance(sweep.get("hash"), str),
        f"{where}.sweep",
        "an object with the sweep's name and hash",
        sweep,
    )
    environment = data.get("environment")
    _expect(isinstance(environment, dict), f"{where}.environment", "an object", environment)
    raw_groups = data.get("groups")
    _expect(
        isinstance(raw_groups, list) and bool(raw_groups),
        f"{where}.groups",
        "a non-empty list of groups",
        raw_groups,
    )
    groups: dict[tuple[Any, ...], Group] = {}
    for i, raw in enumerate(raw_groups):
        group = _parse_group(raw, f"{where}.groups[{i}]")
        key = tuple(group.key[k] for k in GROUP_KEYS)
        if key in groups:
            raise ConfigError(f"{where}.groups[{i}]: duplicate group {group.label}")
        groups[key] = group
    return Baseline(
        sweep=dict(sweep),
        environment=dict(environment),
        groups=groups,
        created_at=str(data.get("created_at", "")),
        rnnbench_version=str(data.get("rnnbench", "")),
    )


def load_baseline(path: str | Path) -> Baseline:
    """Read and validate a baseline file; :class:`ConfigError` naming the field on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw.startswith(b"SQLite format 3\x00"):
            raise ConfigError(
                f"baseline {path}: this is a results store, not a baseline file; make one with "
                "`rnnbench baseline save --store STORE --out baseline.json`"
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"baseline {path}: cannot read it ({exc.__class__.__name__})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"baseline {path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    return parse_baseline(data, where=f"baseline {path}")


# --- the comparison ----------------------------------------------------------------------------

MARKS = {
    "+": "significantly worse",
    "!": "newly failing (error, or diverging where the baseline never diverged)",
    "-": "significantly better",
    "~": "changed, within noise",
    " ": "unchanged",
}
REGRESSION_MARKS = ("+", "!")


@dataclass(frozen=True)
class Row:
    """One (group, metric) line of a comparison."""

    group: str
    metric: str
    baseline: str
    current: str
    ratio: float | None
    p_value: float | None
    mark: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "ratio": _finite_or_none(self.ratio) if self.ratio is not None else None,
            "p_value": self.p_value,
            "mark": self.mark.strip(),
            "note": self.note,
        }


@dataclass
class Comparison:
    rows: list[Row]
    alpha: float
    exact: bool
    correction: str
    baseline_info: str
    current_info: str
    environment_differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.mark in REGRESSION_MARKS]

    @property
    def ok(self) -> bool:
        return not self.regressions

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def verdict(self) -> str:
        count = {mark: sum(row.mark == mark for row in self.rows) for mark in MARKS}
        checks = len(self.rows)
        if self.regressions:
            parts = [f"{count[m]} x '{m}'" for m in REGRESSION_MARKS if count[m]]
            return (
                f"REGRESSION: {len(self.regressions)} of {checks} checks worse "
                f"({', '.join(parts)}) at {self._level()}"
            )
        return (
            f"OK: no stability regression in {checks} checks ({count['~']} changed within noise, "
            f"{count['-']} significantly better) at {self._level()}"
        )

    def _level(self) -> str:
        family = ", Holm-corrected over all checks" if self.correction == "holm" else ""
        return f"alpha={self.alpha:g}{family}"

    def table(self, only_changed: bool = False) -> str:
        rows = [r for r in self.rows if r.mark != " "] if only_changed else self.rows
        lines = [f"baseline: {self.baseline_info}", f"current:  {self.current_info}"]
        if self.environment_differences:
            lines.append(
                "environment differs (flagged, not a regression): "
                + "; ".join(self.environment_differences)
            )
        else:
            lines.append("environment: same as the baseline")
        header = f"{'':2}{'baseline':>12} {'current':>12} {'ratio':>7} {'p':>7}  group · metric"
        lines += ["", header]
        for row in rows:
            ratio = "" if row.ratio is None else f"{row.ratio:7.3g}"
            p_value = "" if row.p_value is None else f"{row.p_value:7.3f}"
            lines.append(
                f"{row.mark:2}{row.baseline:>12} {row.current:>12} {ratio:>7} {p_value:>7}  "
                f"{row.group} · {row.metric}" + (f"  ({row.note})" if row.note else "")
            )
        if only_changed and len(rows) < len(self.rows):
            lines.append(f"  ({len(self.rows) - len(rows)} unchanged rows not shown)")
        lines += [""] + [f"note: {note}" for note in self.notes] + [self.verdict()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "regression" if self.regressions else "ok",
            "summary": self.verdict(),
            "exit_code": self.exit_code,
            "alpha": self.alpha,
            "exact": self.exact,
            "correction": self.correction,
            "baseline": self.baseline_info,
            "current": self.current_info,
            "environment_differences": self.environment_differences,
            "notes": self.notes,
            "marks": {mark.strip() or "": meaning for mark, meaning in MARKS.items()},
            "rows": [row.to_json() for row in self.rows],
        }


def _fmt(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.4g}"


def _same(a: Sequence[Any], b: Sequence[Any]) -> bool:
    if len(a) != len(b):
        return False
    return all((x == y) or (_worst(x) == _worst(y) == math.inf) for x, y in zip(a, b, strict=True))


@dataclass
class _Check:
    """A (group, metric) test before marking: raw one-sided p-values in both directions and
    whether the effect is large enough each way."""

    label: str
    metric: str
    baseline: str
    current: str
    ratio: float | None
    changed: bool
    p_worse: float
    p_better: float
    big_worse: bool
    big_better: bool
    newly_failing: bool = False  # worse here means failing where the baseline never failed


def _rate_check(
    metric: Metric, label: str, base: list[bool], cur: list[bool], min_effect: float
) -> _Check:
    # "bad" is unsolved / diverged; both are tested as "more bad outcomes than before".
    bad_is_true = metric.name != "solved"
    base_bad = sum(v == bad_is_true for v in base)
    cur_bad = sum(v == bad_is_true for v in cur)
    nb, nc = len(base), len(cur)
    shift = cur_bad / nc - base_bad / nb
    base_rate, cur_rate = sum(base) / nb, sum(cur) / nc
    return _Check(
        label,
        metric.name,
        f"{sum(base)}/{nb}",
        f"{sum(cur)}/{nc}",
        cur_rate / base_rate if base_rate else (None if not cur_rate else math.inf),
        changed=base_rate != cur_rate,
        p_worse=fisher_greater(base_bad, nb, cur_bad, nc),
        p_better=fisher_greater(cur_bad, nc, base_bad, nb),
        big_worse=shift >= min_effect,
        big_better=-shift >= min_effect,
        newly_failing=metric.name == "diverged" and base_bad == 0,
    )


def _continuous_check(
    metric: Metric,
    label: str,
    base: list[Any],
    cur: list[Any],
    min_effect: float,
    paired: bool,
    seq_len: int,
) -> _Check:
    assert metric.effect is not None
    scale = seq_len if metric.per_step else 1
    base_bad = [metric.badness(_worst(v)) for v in base]
    cur_bad = [metric.badness(_worst(v)) for v in cur]
    base_median = _median([_worst(v) for v in base])
    cur_median = _median([_worst(v) for v in cur])
    if paired:  # same seeds: unchanged means the same value for every seed
        changed = not _same(base, cur)
    else:
        changed = not _same(sorted(map(_worst, base)), sorted(map(_worst, cur)))
    return _Check(
        label,
        metric.name,
        _fmt(base_median),
        _fmt(cur_median),
        cur_median / base_median if base_median and math.isfinite(base_median) else None,
        changed=changed,
        p_worse=mann_whitney_greater(base_bad, cur_bad),
        p_better=mann_whitney_greater(cur_bad, base_bad),
        big_worse=metric.effect(base_bad, cur_bad) * scale >= min_effect,
        big_better=metric.effect(cur_bad, base_bad) * scale >= min_effect,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979): rejecting where adjusted p < alpha keeps
    the chance of *any* false alarm among all the checks below alpha.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


CORRECTIONS = ("holm", "none")


def _mark(checks: list[_Check], alpha: float, correction: str) -> list[Row]:
    """Marks for all checks at once: with ``holm`` the worse- and better-direction p-values are
    each adjusted over the whole family, so the gate's false-alarm rate is bounded by alpha
    however many groups and metrics a sweep has."""
    adjust = holm if correction == "holm" else (lambda ps: list(ps))
    worse = adjust([c.p_worse for c in checks])
    better = adjust([c.p_better for c in checks])
    rows = []
    for check, p_worse, p_better in zip(checks, worse, better, strict=True):
        p_value: float | None
        if not check.changed:
            mark, p_value = " ", None
        elif p_worse < alpha and check.big_worse:
            mark, p_value = ("!" if check.newly_failing else "+"), p_worse
        elif p_better < alpha and check.big_better:
            mark, p_value = "-", p_better
        else:
            mark, p_value = "~", min(p_worse, p_better)
        rows.append(
            Row(
                check.label, check.metric, check.baseline, check.current, check.ratio, p_value, mark
            )
        )
    return rows


def _index(records: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], dict[str, list[Any]]]:
    index: dict[tuple[Any, ...], dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        key = tuple(record[k] for k in GROUP_KEYS)
        index[key][_config_hash(record.get("config") or {})].append(record)
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
) -> Comparison:
    """Judge ``records`` (run records, e.g. ``Store.runs()``) against ``baseline``.

    Raises :class:`ConfigError` for comparisons that would mix different things (see the
    module docstring); otherwise returns a :class:`Comparison` whose ``exit_code`` is 0 or 1.
    """
    if not (0 < alpha < 1):
        raise ConfigError(f"--alpha: must be between 0 and 1, got {alpha!r}")
    if correction not in CORRECTIONS:
        raise ConfigError(
            f"--correction: must be one of {', '.join(CORRECTIONS)}, got {correction!r}"
        )
    min_effects = {m.name: m.min_effect for m in METRICS.values()}
    for name, value in (tolerances or {}).items():
        METRICS.get(name, "--tolerance")  # names the allowed metrics on a miss
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise ConfigError(f"--tolerance {name}: must be a number >= 0, got {value!r}")
        min_effects[name] = float(value)
    index = _index(records)
    notes: list[str] = []
    selected: list[tuple[Group, list[Mapping[str, Any]]]] = []
    missing: list[str] = []
    for key, group in baseline.groups.items():
        configs = index.get(key, {})
        runs = configs.get(group.config_hash)
        if runs is None and configs:
            if not allow_config_change or len(configs) > 1:
                other = next(iter(configs.values()))[0].get("config") or {}
                raise ConfigError(
                    f"group {group.label}: the runs' configuration differs from the baseline's "
                    f"({_first_difference(group, other)}); re-run the baseline's sweep, or pass "
                    "--allow-config-change to compare anyway"
                )
            runs = next(iter(configs.values()))
            notes.append(f"{group.label}: configuration differs from the baseline (allowed)")
        elif runs is not None and len(configs) > 1:
            notes.append(f"{group.label}: runs of other configurations in the store were ignored")
        if runs is None:
            missing.append(group.label)
            continue
        selected.append((group, runs))
    if missing:
        raise ConfigError(
            f"store: no runs for {len(missing)} of {len(baseline.groups)} baseline groups "
            f"(e.g. {missing[0]}); run the baseline's sweep ({baseline.sweep.get('name')}) "
            "into the store first"
        )
    extra = [k for k in index if k not in baseline.groups]
    if extra:
        notes.append(f"{len(extra)} group(s) in the store are not in the baseline; not compared")

    current_records = [r for _, runs in selected for r in runs]
    current_env = _summarize_env(r.get("env") for r in current_records)
    env_diffs = _environment_differences(baseline.environment, current_env)
    checks: list[_Check] = []
    extra_rows: list[Row] = []  # errors and bitwise checks: facts, not statistics
    skipped_exact = False
    for group, runs in selected:
        errors = [r for r in runs if r.get("status") == "error"]
        finished = [r for r in runs if r.get("status") != "error"]
        if errors:
            extra_rows.append(
                Row(
                    group.label,
                    "status",
                    f"0/{len(group.seeds)}",
                    f"{len(errors)}/{len(runs)} error",
                    None,
                    None,
                    "!",
                    f"{errors[0].get('error')}",
                )
            )
        if not finished:
            continue
        current = groups_from_records(finished)[tuple(group.key[k] for k in GROUP_KEYS)]
        same_seeds = current.seeds == group.seeds
        if not same_seeds:
            notes.append(
                f"{group.label}: seeds differ (baseline {_seeds(group.seeds)}, "
                f"current {_seeds(current.seeds)}); compared as samples"
            )
        for metric in METRICS.values():
            base, cur = group.values[metric.name], current.values[metric.name]
            if metric.kind == "rate":
                checks.append(_rate_check(metric, group.label, base, cur, min_effects[metric.name]))
            else:
                checks.append(
                    _continuous_check(
                        metric,
                        group.label,
                        base,
                        cur,
                        min_effects[metric.name],
                        same_seeds,
                        int(group.key["seq_len"]),
                    )
                )
        if exact:
            if env_diffs or not same_seeds:
                skipped_exact = True
                continue
            differ = sum(
                a != b for a, b in zip(group.trajectory_hash, current.trajectory_hash, strict=True)
            )
            extra_rows.append(
                Row(
                    group.label,
                    "trajectory",
                    f"{len(group.seeds)} runs",
                    f"{differ} differ" if differ else "identical",
                    None,
                    None,
                    "!" if differ else " ",
                    "not bit-identical on the same environment" if differ else "",
                )
            )
    rows = _mark(checks, alpha, correction) + extra_rows
    rows.sort(key=lambda row: row.group)  # stable: each group's metrics stay in order
    if skipped_exact:
        notes.append(
            "--exact: bitwise comparison needs the same environment and seeds; skipped where "
            "they differ (statistical gate only)"
        )
    base_env = baseline.environment
    return Comparison(
        rows=rows,
        alpha=alpha,
        exact=exact,
        correction=correction,
        baseline_info=(
            f"sweep {baseline.sweep.get('name')} ({baseline.sweep.get('runs')} runs, "
            f"{len(baseline.groups)} groups), rnnbench {baseline.rnnbench_version}, "
            f"{_revision(base_env)}, saved {baseline.created_at}"
        ),
        current_info=f"{current_name} ({len(current_records)} runs), {_revision(current_env)}",
        environment_differences=env_diffs,
        notes=notes,
    )


def _seeds(seeds: Sequence[int]) -> str:
    return ",".join(map(str, seeds)) if len(seeds) <= 6 else f"{seeds[0]}..{seeds[-1]}"


def _first_difference(group: Group, config: Mapping[str, Any]) -> str:
    """'train.lr: 0.01 -> 0.003' for the first differing leaf, or the two hashes."""
    return config_difference(group.config, config)


def false_alarms(
    records: list[dict[str, Any]], block_size: int, blocks: int, **compare_kwargs: Any
) -> tuple[int, int, Counter[tuple[str, str]]]:
    """Calibrate a gate sweep: run it with ``blocks`` disjoint blocks of ``block_size`` seeds
    (seeds 0..block_size*blocks-1), pass the records here, and every block is compared with
    every other as if it were the baseline - unchanged code, fresh randomness.

    Returns (failing comparisons, comparisons, Counter of (metric, mark) over all rows).
    """
    by_block = [
        [r for r in records if b * block_size <= r["seed"] < (b + 1) * block_size]
        for b in range(blocks)
    ]
    failing, pairs = 0, 0
    marks: Counter[tuple[str, str]] = Counter()
    for b, base_runs in enumerate(by_block):
        baseline = Baseline.from_records(base_runs)
        for c, current in enumerate(by_block):
            if c == b:
                continue
            result = compare(baseline, current, **compare_kwargs)
            failing += not result.ok
            pairs += 1
            marks.update((row.metric, row.mark) for row in result.rows if row.mark != " ")
    return failing, pairs, marks
