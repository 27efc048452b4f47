"""The baseline file: per group, the per-seed values of the stability metrics of a sweep.

A small, versioned, diff-friendly JSON file (sorted keys, one field per line, lists of scalars
on one line), with the configuration hash of every group and the environment the runs came
from. Reading one back checks every field and names the first that is wrong, in one line.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.config.hashing import group_config, group_hash
from rnnbench.errors import ConfigError
from rnnbench.gate.metrics import METRICS
from rnnbench.gate.stats import seeds_needed, smallest_p
from rnnbench.results.grouping import (
    GROUP_KEYS,
    check_one_configuration,
    group_fields,
    group_key,
    group_label,
)
from rnnbench.results.record import RUN_STATUSES
from rnnbench.version import __version__

BASELINE_FORMAT = "rnnbench-baseline"
BASELINE_VERSION = 1
#: Environment fields that must match for bitwise comparison.  ``git_revision`` is expected
#: to differ (it is the change under test) and ``pid`` always does.
ENV_KEYS = ("rnnbench", "torch", "python", "platform", "device", "device_name", "threads")


def summarize_env(envs: Iterable[Mapping[str, Any] | None]) -> dict[str, Any]:
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


def finite_or_none(value: Any) -> Any:
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
    #: the user code the runs ran (module -> source hash): an edit is flagged, not refused
    code: dict[str, str] = field(default_factory=dict)

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
            "values": {k: [finite_or_none(v) for v in vs] for k, vs in self.values.items()},
            **({"code": self.code} if self.code else {}),
        }


def groups_from_records(
    records: Iterable[Mapping[str, Any]], where: str = "the store"
) -> dict[tuple[Any, ...], Group]:
    """Group finished runs by (task, arch, seq_len, clip); seeds in ascending order.

    Raises ConfigError when one group mixes configurations (runs of two different sweeps in one
    store): the baseline would silently average over them.
    """
    records = list(records)
    check_one_configuration(records, where)
    by_key: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_key[group_key(record)].append(record)
    groups: dict[tuple[Any, ...], Group] = {}
    for key, runs in sorted(by_key.items(), key=lambda item: json.dumps(item[0])):
        runs = sorted(runs, key=lambda r: int(r["seed"]))
        groups[key] = Group(
            key=group_fields(runs[0]),
            config_hash=group_hash(runs[0].get("config") or {}),
            config=group_config(runs[0].get("config") or {}),
            seeds=[int(r["seed"]) for r in runs],
            run_ids=[str(r["run_id"]) for r in runs],
            status=[str(r["status"]) for r in runs],
            trajectory_hash=[(r.get("metrics") or {}).get("trajectory_hash") for r in runs],
            values={m.name: [m.read(r) for r in runs] for m in METRICS.values()},
            code=dict((runs[0].get("config") or {}).get("code") or {}),
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
        cls,
        records: Iterable[Mapping[str, Any]],
        sweep_name: str | None = None,
        where: str = "the store",
    ) -> Baseline:
        records = list(records)
        errors = [r for r in records if r.get("status") == "error"]
        if errors:
            raise ConfigError(
                f"store: {len(errors)} run(s) ended in 'error' (e.g. {errors[0].get('error')!r}); "
                "fix them and re-run the sweep before saving a baseline"
            )
        if not records:
            raise ConfigError("store: no finished runs to make a baseline from")
        groups = groups_from_records(records, where)
        names = sorted({str(r.get("sweep")) for r in records})
        return cls(
            sweep={
                "name": sweep_name or (names[0] if len(names) == 1 else names),
                "hash": _sweep_hash(groups),
                "runs": len(records),
            },
            environment=summarize_env(r.get("env") for r in records),
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

    def power_warning(self, alpha: float = 0.05) -> str | None:
        """A warning when a comparison against this baseline, with as many seeds, could not
        detect a regression in any check after the Holm correction (see :func:`compare`)."""
        checks = len(self.groups) * len(METRICS.values())
        seeds = min((len(g.seeds) for g in self.groups.values()), default=0)
        best = min(1.0, checks * smallest_p(seeds, seeds))  # Holm: the smallest p times m
        if not checks or best < alpha:
            return None
        return (
            f"with {seeds} seeds per group and {checks} checks, a comparison against this "
            f"baseline cannot detect a regression: the smallest Holm-adjusted p is "
            f"{best:.3g}, not below alpha={alpha:g}; "
            f"use at least {seeds_needed(checks, alpha)} seeds"
        )

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
    axes, code = data.get("axes", {}), data.get("code", {})
    _expect(isinstance(axes, dict), f"{where}.axes", "an object of swept values", axes)
    _expect(isinstance(code, dict), f"{where}.code", "an object of module source hashes", code)
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
        key={k: data[k] for k in GROUP_KEYS} | ({"axes": axes} if axes else {}),
        config_hash=data["config_hash"],
        config=dict(config),
        seeds=list(seeds),
        run_ids=list(data["run_ids"]),
        status=list(data["status"]),
        trajectory_hash=list(data["trajectory_hash"]),
        values=parsed,
        code=dict(code),
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
        key = group_key(group.key)
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
            f"baseline {path}: not valid JSON ({exc.msg.removesuffix(' at')} at line "
            f"{exc.lineno} column {exc.colno})"  # json's own may end in "at": not "at at"
        ) from None
    return parse_baseline(data, where=f"baseline {path}")
