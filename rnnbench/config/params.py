"""The parameters a user cell's constructor takes, read from its signature, and the check of
values from a sweep (``[archs.NAME]``, ``[grid.archs.NAME]``) against them.

A cell's ``__init__(input_size, hidden_size, **params)``: every parameter after the first two
is settable from the sweep. Its annotation says what it accepts (``float``, ``int``, ``bool``,
``str``, ``Literal[...]``, ``X | None``, ``list``/``tuple``); without one, the type of its
default does. Anything else is passed through unchecked. Torch-free.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rnnbench.errors import ConfigError

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class Param:
    """One constructor parameter: its name, the type it accepts (None: any) and default."""

    name: str
    annotation: Any = None
    default: Any = _EMPTY

    @property
    def required(self) -> bool:
        return self.default is _EMPTY

    def describe(self) -> str:
        """'gate_bias: float = 1.0', as ``rnnbench list`` prints it."""
        text = self.name
        if self.annotation is not None:
            text += f": {_type_text(self.annotation)}"
        return text + (" (required)" if self.required else f" = {self.default!r}")


@dataclass(frozen=True)
class ParamSpec:
    """The parameters of a constructor after ``input_size`` and ``hidden_size``; ``open``:
    it also takes ``**kwargs``, so names beyond these are passed through."""

    params: tuple[Param, ...] = ()
    open: bool = False

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def check(self, where: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` checked against the parameters; ConfigError naming ``where.key``."""
        known = {p.name: p for p in self.params}
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                if self.open:
                    out[key] = value
                    continue
                raise ConfigError(f"{where}.{key}: unknown parameter; {self.accepted()}")
            out[key] = check_annotated(f"{where}.{key}", value, known[key].annotation)
        return out

    def check_required(self, where: str, given: Mapping[str, Any]) -> None:
        for param in self.params:
            if param.required and param.name not in given:
                raise ConfigError(f"{where}.{param.name}: required parameter is missing")

    def accepted(self) -> str:
        if not self.params:
            return "it accepts no parameters"
        return "accepted: " + ", ".join(p.describe() for p in self.params)


def signature_params(factory: Callable[..., Any], skip: int = 2) -> ParamSpec:
    """The :class:`ParamSpec` of ``factory`` (a class or function), its first ``skip``
    positional parameters (input_size, hidden_size) left out."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return ParamSpec(open=True)
    target = factory.__init__ if isinstance(factory, type) else factory  # type: ignore[misc]
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: fall back to the defaults' types
        hints = {}
    params: list[Param] = []
    is_open = False
    for index, param in enumerate(signature.parameters.values()):
        if param.kind is param.VAR_KEYWORD:
            is_open = True
            continue
        if index < skip or param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            continue
        annotation = hints.get(param.name)
        if annotation is None and param.default is not _EMPTY and param.default is not None:
            annotation = type(param.default)
        params.append(Param(param.name, annotation, param.default))
    return ParamSpec(tuple(params), is_open)


def _type_text(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def check_annotated(path: str, value: Any, annotation: Any) -> Any:
    """``value`` checked against ``annotation`` (see the module docstring); returned, an
    integer widened to float for a float parameter."""
    if annotation is None or annotation is Any:
        return value
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"{path}: expected one of {', '.join(map(repr, allowed))}, got {value!r}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return check_annotated(path, value, option)
            except ConfigError:
                continue
        raise ConfigError(f"{path}: expected {_type_text(annotation)}, got {value!r}")
    base = origin or annotation
    if not isinstance(base, type):
        return value  # a TypeVar, a Protocol, ...: not checked
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        return float(value)
    if base is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if base in (list, tuple) and isinstance(value, list):
        return value  # a TOML array; kept a list, so the config round-trips through JSON
    if base is not int and not isinstance(value, base):
        raise ConfigError(f"{path}: expected {_type_text(annotation)}, got {value!r}")
    return value
