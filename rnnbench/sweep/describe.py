"""What a sweep may name: every registered task and architecture with the parameters it takes
(``rnnbench list``), user cells and tasks included once their modules are imported."""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any

from rnnbench.config.params import Param
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, INITS
from rnnbench.registry import import_plugins
from rnnbench.tasks import TASKS
from rnnbench.training import OPTIMIZERS


def import_sweep_modules(path: Path) -> list[str]:
    """Import the modules a sweep file's ``imports`` names (found next to it), without
    checking the rest of the file; returns their names."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read sweep file ({exc})") from None
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError(f"{path}: imports: expected a list of module names, got {imports!r}")
    import_plugins(imports, path.resolve().parent)
    return imports


def _task_params(cls: type[Any]) -> list[Param]:
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        if f.name == "seq_len":  # an axis of its own: grid.seq_len, tasks.NAME.seq_len
            continue
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if default is dataclasses.MISSING:
            default = Param.__dataclass_fields__["default"].default
        params.append(Param(f.name, hints.get(f.name), default))
    return params


def _summary(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else ""


def describe() -> str:
    """The registered tasks and architectures, one per line, each followed by its
    parameters and their defaults."""
    lines = ["tasks (parameters: [tasks.NAME], axes: [grid.tasks.NAME])"]
    for name in TASKS.names():
        cls = TASKS.get(name)
        where = "" if cls.__module__.startswith("rnnbench.") else f" [{cls.__module__}]"
        lines.append(f"  {name}: {_summary(cls)}{where}")
        lines += [f"    {p.describe()}" for p in _task_params(cls)]
    lines.append("architectures (parameters: [archs.NAME], axes: [grid.archs.NAME])")
    for name in ARCHITECTURES.names():
        arch = ARCHITECTURES.get(name)
        where = f" [{arch.origin}]" if arch.user else ""
        lines.append(f"  {name}: {arch.description}{where}")
        if arch.params is None:
            continue
        lines += [f"    {p.describe()}" for p in arch.params.params]
        if arch.params.open:
            lines.append("    (and any other keyword: the constructor takes **kwargs)")
    lines.append(f"inits ([model] init, with init_gain): {', '.join(INITS.names())}")
    lines.append(f"optimizers ([train] optimizer): {', '.join(OPTIMIZERS.names())}")
    return "\n".join(lines)
