"""Grid axes over any field: the nested tables of ``[grid]``.

``[grid.model]``, ``[grid.train]`` and ``[grid.diagnostics]`` list values of the settings'
fields; ``[grid.tasks.NAME]`` of a task's parameters, multiplying only that task's runs;
``[grid.archs.NAME]`` of a user cell's constructor parameters, multiplying only that
architecture's runs. Every value is checked exactly as the scalar field would be, and the
error names the element (``grid.train.lr[1]``). A field is set in one place: as an axis or as a
scalar, never both.
"""

from __future__ import annotations

import dataclasses
import itertools
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from rnnbench.config.fields import Choices, check_value
from rnnbench.config.schema import DiagnosticSettings, ModelSettings, TrainSettings
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES
from rnnbench.tasks import make_task

#: The settings sections an axis may vary, by their name in the sweep file.
SECTIONS: dict[str, type[Any]] = {
    "model": ModelSettings,
    "train": TrainSettings,
    "diagnostics": DiagnosticSettings,
}
FIXED_AXES = ("task", "arch", "seq_len", "clip", "seed")
NESTED = (*SECTIONS, "tasks", "archs")


@dataclass(frozen=True)
class Axis:
    """One swept field: where the user wrote it, the key it sets, and its checked values."""

    path: str  # "train.lr", "tasks.adding.placement", "archs.mycell.gate_bias"
    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class GridAxes:
    """The nested axes of a grid, by what they vary."""

    settings: dict[str, list[Axis]] = field(default_factory=dict)  # section -> axes
    tasks: dict[str, list[Axis]] = field(default_factory=dict)  # task name -> axes
    archs: dict[str, list[Axis]] = field(default_factory=dict)  # arch name -> axes


def combinations(axes: list[Axis]) -> Iterator[dict[str, Any]]:
    """Every combination of ``axes``' values, ``{path: value}`` (one empty one for no axes)."""
    for values in itertools.product(*(axis.values for axis in axes)):
        yield {axis.path: value for axis, value in zip(axes, values, strict=True)}


def _values(path: str, raw: Any) -> list[Any]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise ConfigError(f"{path}: must list at least one value")
    if len({repr(v) for v in values}) != len(values):
        raise ConfigError(f"{path}: lists a value twice: {values!r}")
    return values


def _table(path: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a table of axes (key = [values]), got {raw!r}")
    return raw


def _settings_axes(section: str, raw: Any, data: Mapping[str, Any], choices: Choices) -> list[Axis]:
    cls = SECTIONS[section]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    axes = []
    for key, value in _table(f"grid.{section}", raw).items():
        path = f"grid.{section}.{key}"
        if key not in fields:
            raise ConfigError(f"{path}: unknown key; allowed: {', '.join(fields)}")
        _refuse_scalar(path, key, data.get(section, {}), f"{section}.{key}")
        for task_name, table in (data.get("tasks") or {}).items():
            if isinstance(table, dict):
                _refuse_scalar(
                    path, key, table.get(section, {}), f"tasks.{task_name}.{section}.{key}"
                )
        values = [
            check_value(f"{path}[{i}]", v, hints[key], fields[key].metadata, choices)
            for i, v in enumerate(_values(path, value))
        ]
        axes.append(Axis(f"{section}.{key}", key, tuple(values)))
    return axes


def _refuse_scalar(path: str, key: str, table: Any, where: str) -> None:
    if isinstance(table, dict) and key in table:
        raise ConfigError(
            f"{path}: also set as {where}; set a field in one place, as an axis or a value"
        )


def _task_axes(
    name: str, raw: Any, data: Mapping[str, Any], tasks: list[str], seq_len: int
) -> list[Axis]:
    where = f"grid.tasks.{name}"
    if name not in tasks:
        raise ConfigError(f"{where}: not in grid.task; allowed: {', '.join(tasks)}")
    table = dict((data.get("tasks") or {}).get(name) or {})
    base = {k: v for k, v in table.items() if k not in ("model", "train", "seq_len")}
    axes = []
    for key, value in _table(where, raw).items():
        path = f"{where}.{key}"
        if key in ("seq_len", "model", "train"):
            raise ConfigError(
                f"{path}: not a task parameter; list sequence lengths in grid.seq_len or "
                f"tasks.{name}.seq_len, settings in [grid.model] / [grid.train]"
            )
        _refuse_scalar(path, key, table, f"tasks.{name}.{key}")
        values = _values(path, value)
        for i, v in enumerate(values):
            _check_task_value(name, base, key, v, f"{path}[{i}]", seq_len)
        axes.append(Axis(f"tasks.{name}.{key}", key, tuple(values)))
    return axes


def _check_task_value(
    name: str, base: dict[str, Any], key: str, value: Any, path: str, seq_len: int
) -> None:
    """``value`` checked as the task checks ``tasks.NAME.key``; the error names ``path``."""
    try:
        make_task(name, seq_len=seq_len, **{**base, key: value})
    except ConfigError as exc:
        text = str(exc)
        prefix = f"tasks.{name}.{key}"
        if text.startswith(prefix):
            raise ConfigError(path + text[len(prefix) :]) from None
        raise ConfigError(f"{path}: {text}") from None  # another parameter's rule, e.g. a pair


def _arch_axes(name: str, raw: Any, data: Mapping[str, Any], archs: list[str]) -> list[Axis]:
    where = f"grid.archs.{name}"
    if name not in archs:
        raise ConfigError(f"{where}: not in grid.arch; allowed: {', '.join(archs)}")
    scalars = (data.get("archs") or {}).get(name) or {}
    spec = ARCHITECTURES.get(name, where)
    axes = []
    for key, value in _table(where, raw).items():
        path = f"{where}.{key}"
        _refuse_scalar(path, key, scalars, f"archs.{name}.{key}")
        checked = []
        for i, v in enumerate(_values(path, value)):
            try:
                checked.append(spec.check_params(name, {key: v}, where)[key])
            except ConfigError as exc:  # name the element: grid.archs.x.gate_bias[1]
                raise ConfigError(str(exc).replace(path, f"{path}[{i}]", 1)) from None
        axes.append(Axis(f"archs.{name}.{key}", key, tuple(checked)))
    return axes


def parse_grid_axes(
    grid: Mapping[str, Any],
    data: Mapping[str, Any],
    tasks: list[str],
    archs: list[str],
    choices: Choices,
    seq_lens: Mapping[str, int],
) -> GridAxes:
    """The nested tables of ``[grid]``, checked (the fixed axes are the caller's);
    ``seq_lens``: a sequence length of each task, to build it with a value."""
    axes = GridAxes()
    for section in SECTIONS:
        if section in grid:
            axes.settings[section] = _settings_axes(section, grid[section], data, choices)
    for name, raw in _table("grid.tasks", grid.get("tasks", {})).items():
        axes.tasks[name] = _task_axes(name, raw, data, tasks, seq_lens.get(name, 100))
    for name, raw in _table("grid.archs", grid.get("archs", {})).items():
        axes.archs[name] = _arch_axes(name, raw, data, archs)
    return axes
