"""Checks of single values against a field's type and range: one ConfigError line naming the
field and what is allowed. Torch-free, shared by the config schema, tasks and models."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any

from rnnbench.errors import ConfigError
from rnnbench.registry import Registry


def check_int(field: str, value: Any, *, minimum: int, maximum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{field}: expected an integer in [{minimum}, {maximum}], got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{field}: must be in [{minimum}, {maximum}], got {value}")


def check_float(field: str, value: Any, *, minimum: float, maximum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{field}: expected a number in [{minimum}, {maximum}], got {value!r}")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{field}: must be in [{minimum}, {maximum}], got {value}")


def bounds(lo: float, hi: float) -> dict[str, float]:
    """A field's metadata: its value must lie in ``[lo, hi]``."""
    return {"min": lo, "max": hi}


#: The registries that name a field's allowed values, by the kind its metadata names
#: (``{"registry": "optimizer"}``). The sweep parser, which sits above the registries' owners,
#: passes them in; this module only knows they are mappings of names.
Choices = Mapping[str, Registry[Any]]


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, str(tp)
    )


def check_value(path: str, value: Any, tp: Any, meta: Any, choices: Choices) -> Any:
    """``value`` checked against type ``tp`` and the field metadata ``meta`` (a range, or the
    registry of allowed names); returned, an integer widened to float where ``tp`` is float."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) is not (tp is bool) or not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if "registry" in meta:
        choices[meta["registry"]].get(value, path)  # names the allowed values on a miss
    if "min" in meta:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        if not meta["min"] <= value <= meta["max"]:
            raise ConfigError(
                f"{path}: must be in [{meta['min']:g}, {meta['max']:g}], got {value!r}"
            )
    return value


def parse_section(cls: type[Any], table: Any, path: str, choices: Choices, base: Any = None) -> Any:
    """Build dataclass ``cls`` from a TOML table, refusing unknown keys and bad values.
    ``base`` (an instance) supplies the values the table does not set."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: expected a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(f"{path}.{unknown[0]}: unknown key; allowed: {', '.join(fields)}")
    values = dataclasses.asdict(base) if base is not None else {}
    for key, value in table.items():
        values[key] = check_value(f"{path}.{key}", value, hints[key], fields[key].metadata, choices)
    return cls(**values)
