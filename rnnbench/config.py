"""Sweep files and run configurations.

A sweep file (TOML) declares a grid; its Cartesian product is a list of :class:`RunConfig`, each
a complete, frozen description of one training run whose canonical hash is the run's key in the
store. Validation is strict: an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` with a one-line message naming the field and the allowed values.

Layout (every section but ``[grid]`` optional)::

    name = "smoke"
    [grid]                  # the Cartesian product of these axes is the sweep
    task = ["copy", "adding"]
    arch = ["rnn", "lstm", "gru"]
    seq_len = [20, 50]
    clip = ["none", "norm:1.0"]
    seed = [0, 1]
    [model]                 # ModelSettings
    [train]                 # TrainSettings
    [diagnostics]           # DiagnosticSettings
    [tasks.copy]            # task parameters (e.g. solve_accuracy), plus optional
    [tasks.copy.model]      #   per-task overrides of [model] and [train]
    [tasks.copy.train]
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import math
import sys
import tomllib
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.confighash import canonical_config
from rnnbench.errors import ConfigError
from rnnbench.registry import Registry
from rnnbench.tasks import TASKS, make_task

#: Bumped when the meaning of a config field changes, so old run ids are not reused wrongly.
CONFIG_VERSION = 1


@dataclass(frozen=True)
class ClipSpec:
    """Gradient clipping: ``none``, ``norm:X`` (clip_grad_norm_), ``value:X`` (clip_grad_value_)."""

    mode: str
    threshold: float = math.inf

    @classmethod
    def parse(cls, text: Any, field_name: str = "grid.clip") -> ClipSpec:
        allowed = "'none', 'norm:X' or 'value:X' with X > 0"
        if not isinstance(text, str):
            raise ConfigError(f"{field_name}: expected {allowed}, got {text!r}")
        if text == "none":
            return cls("none")
        mode, _, number = text.partition(":")
        if mode not in CLIP_MODES or mode == "none":
            raise ConfigError(f"{field_name}: expected {allowed}, got {text!r}")
        try:
            threshold = float(number)
        except ValueError:
            raise ConfigError(f"{field_name}: expected {allowed}, got {text!r}") from None
        if not (threshold > 0 and math.isfinite(threshold)):
            raise ConfigError(f"{field_name}: threshold must be > 0 and finite, got {text!r}")
        return cls(mode, threshold)

    def __str__(self) -> str:
        return "none" if self.mode == "none" else f"{self.mode}:{self.threshold:g}"


#: Clipping modes; the functions live in :mod:`rnnbench.training` (this names what is allowed).
CLIP_MODES = ("none", "norm", "value")


def _range(lo: float, hi: float) -> dict[str, float]:
    return {"min": lo, "max": hi}


@dataclass(frozen=True)
class ModelSettings:
    hidden_size: int = field(default=64, metadata=_range(1, 65_536))  # units per layer
    num_layers: int = field(default=1, metadata=_range(1, 64))  # stacked recurrent layers
    init: str = field(default="default", metadata={"registry": "init"})
    init_gain: float = field(default=1.0, metadata=_range(0.0, 1e6))  # scale of the recurrent init
    # how a built-in core trains: "fused" (nn.RNN/LSTM/GRU), "loop" (torch.*_cell per step) or
    # "auto" (by device, architecture and batch x hidden x T; rnnbench.models.train_impl). The two
    # round differently, so the resolved choice is recorded (metrics.impl).
    impl: str = field(default="auto", metadata={"registry": "impl"})


@dataclass(frozen=True)
class TrainSettings:
    steps: int = field(default=200, metadata=_range(1, 10_000_000))  # optimizer steps
    batch_size: int = field(default=64, metadata=_range(1, 1_000_000))
    lr: float = field(default=1e-3, metadata=_range(1e-12, 1e3))
    optimizer: str = field(default="adam", metadata={"registry": "optimizer"})
    momentum: float = field(default=0.0, metadata=_range(0.0, 1.0))  # sgd / rmsprop momentum
    weight_decay: float = field(default=0.0, metadata=_range(0.0, 1.0))


@dataclass(frozen=True)
class DiagnosticSettings:
    # false: train and evaluate only. The per-step loss and pre-clip gradient norm, the
    # divergence check and the final evaluation (solved, normalized_loss) stay; the gradient
    # profiles, per-parameter norms and the memory probe are skipped, so their record fields
    # are NaN / None / empty. For timing a sweep, or when only the learning outcome matters.
    enabled: bool = True
    # gradient profiles and per-parameter norms at init, at this many checkpoints, and at the end
    checkpoints: int = field(default=4, metadata=_range(0, 1000))
    # the fixed held-out set that judges `solved` (same for every run of a task)
    eval_size: int = field(default=1000, metadata=_range(1, 10_000_000))
    # the fixed diagnostic batch of the gradient profile
    profile_batch_size: int = field(default=64, metadata=_range(1, 1_000_000))
    # memory-capacity probe: lags 1..probe_max_lag (capped at the sequence length - 1)
    probe_max_lag: int = field(default=50, metadata=_range(0, 100_000))
    probe_size: int = field(default=256, metadata=_range(2, 1_000_000))  # probe sequences
    probe_ridge: float = field(default=1e-3, metadata=_range(0.0, 1e6))  # ridge penalty
    # loss / gradient-norm curves are stored down-sampled to at most this many points
    curve_points: int = field(default=500, metadata=_range(2, 1_000_000))


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one training run."""

    sweep: str
    task: str
    task_params: dict[str, Any]
    arch: str
    seq_len: int
    clip: str
    seed: int
    model: ModelSettings
    train: TrainSettings
    diagnostics: DiagnosticSettings

    @property
    def clip_spec(self) -> ClipSpec:
        return ClipSpec.parse(self.clip)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["config_version"] = CONFIG_VERSION
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        data.pop("config_version", None)
        return cls(
            **{
                **data,
                "model": ModelSettings(**data["model"]),
                "train": TrainSettings(**data["train"]),
                "diagnostics": DiagnosticSettings(**data["diagnostics"]),
            }
        )

    @property
    def run_id(self) -> str:
        """Canonical hash of the config (sorted-key JSON); the sweep's name is not part of it,
        so the same run in two sweep files is the same run."""
        data = canonical_config(self.to_dict())
        data.pop("sweep")
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def make_task(self) -> Any:
        return make_task(self.task, seq_len=self.seq_len, **self.task_params)


GRID_AXES = ("task", "arch", "seq_len", "clip", "seed")


@dataclass(frozen=True)
class Sweep:
    name: str
    runs: list[RunConfig]
    source: str = ""  # the sweep file's text, stored with the results
    imports: tuple[str, ...] = ()  # modules that register user tasks / cells (also in workers)
    base: str | None = None  # the sweep file's folder, put on sys.path for ``imports``


def import_plugins(modules: Iterable[str], base: str | Path | None = None) -> None:
    """Import the modules that register user tasks and cells (sweep key ``imports``).
    ``base`` (the sweep file's folder) is put on ``sys.path`` first."""
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"imports: cannot import {name!r} ({exc})") from None


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false"}.get(
        tp, str(tp)
    )


def _registries() -> dict[str, Registry[Any]]:
    """The registries that name allowed values (imported late: they pull in torch)."""
    from rnnbench.models import IMPLS, INITS
    from rnnbench.training import OPTIMIZERS

    return {"impl": IMPLS, "init": INITS, "optimizer": OPTIMIZERS}


def _check_value(path: str, value: Any, tp: Any, meta: Any) -> Any:
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) is not (tp is bool) or not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if "registry" in meta:
        _registries()[meta["registry"]].get(value, path)  # names the allowed values on a miss
    if "min" in meta:
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{path}: must be finite, got {value!r}")
        if not meta["min"] <= value <= meta["max"]:
            raise ConfigError(
                f"{path}: must be in [{meta['min']:g}, {meta['max']:g}], got {value!r}"
            )
    return value


def parse_section(cls: type[Any], table: Any, path: str, base: Any = None) -> Any:
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
        values[key] = _check_value(f"{path}.{key}", value, hints[key], fields[key].metadata)
    return cls(**values)


def _grid_axis(
    grid: dict[str, Any], axis: str, known: Registry[Any] | None = None, path: str = ""
) -> list[Any]:
    """The values of one axis, validated. ``path`` is where the user wrote the list, for the
    errors: ``grid.<axis>`` unless given (a per-task ``tasks.<name>.seq_len``)."""
    path = path or f"grid.{axis}"
    if axis not in grid:
        raise ConfigError(f"{path}: required; the grid needs {', '.join(GRID_AXES)}")
    values = grid[axis]
    if not isinstance(values, list):
        values = [values]
    if not values:
        raise ConfigError(f"{path}: must list at least one value")
    if len(set(map(str, values))) != len(values):
        raise ConfigError(f"{path}: lists a value twice: {values!r}")
    for value in values:
        if axis in ("seq_len", "seed"):
            lo, hi = (1, 100_000) if axis == "seq_len" else (0, 2**31 - 1)
            _check_value(path, value, int, _range(lo, hi))
        elif axis == "clip":
            ClipSpec.parse(value, path)
        elif known is not None and value not in known:
            raise ConfigError(
                f"{path}: unknown {axis} {value!r}; allowed: {', '.join(known.names())}"
            )
    return values


def parse_sweep(
    data: dict[str, Any], *, default_name: str = "sweep", source: str = "", base: str | None = None
) -> Sweep:
    """Validate a parsed sweep document and expand its grid."""
    from rnnbench.models import ARCHITECTURES, check_impl  # models import torch; keep config light

    allowed = ("name", "imports", "grid", "model", "train", "diagnostics", "tasks")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; allowed: {', '.join(allowed)}")
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError(f"imports: expected a list of module names, got {imports!r}")
    import_plugins(imports, base)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name: expected a non-empty string, got {name!r}")
    grid = data.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("grid: required table with axes " + ", ".join(GRID_AXES))
    extra = sorted(set(grid) - set(GRID_AXES))
    if extra:
        raise ConfigError(f"grid.{extra[0]}: unknown axis; allowed: {', '.join(GRID_AXES)}")
    axes = {
        "task": _grid_axis(grid, "task", TASKS),
        "arch": _grid_axis(grid, "arch", ARCHITECTURES),
        "seq_len": _grid_axis(grid, "seq_len") if "seq_len" in grid else [],
        "clip": _grid_axis(grid, "clip"),
        "seed": _grid_axis(grid, "seed"),
    }
    model = parse_section(ModelSettings, data.get("model", {}), "model")
    train = parse_section(TrainSettings, data.get("train", {}), "train")
    diagnostics = parse_section(DiagnosticSettings, data.get("diagnostics", {}), "diagnostics")
    tasks_table = data.get("tasks", {})
    if not isinstance(tasks_table, dict):
        raise ConfigError(f"tasks: expected a table of per-task settings, got {tasks_table!r}")
    for task_name, table in tasks_table.items():
        if not isinstance(table, dict):
            raise ConfigError(f"tasks.{task_name}: expected a table, got {table!r}")
        if task_name not in axes["task"]:
            raise ConfigError(
                f"tasks.{task_name}: not in grid.task; allowed: {', '.join(axes['task'])}"
            )
    for task_name in axes["task"]:
        if not axes["seq_len"] and "seq_len" not in tasks_table.get(task_name, {}):
            raise ConfigError(f"grid.seq_len: required (or tasks.{task_name}.seq_len)")
    per_task: dict[str, tuple[dict[str, Any], list[int], ModelSettings, TrainSettings]] = {}
    for task_name in axes["task"]:
        table = dict(tasks_table.get(task_name, {}))
        seq_lens = axes["seq_len"]
        if "seq_len" in table:  # a per-task list of T overrides grid.seq_len for that task
            # Checked like grid.seq_len, but errors name the key the user wrote.
            seq_lens = _grid_axis(
                {"seq_len": table.pop("seq_len")}, "seq_len", path=f"tasks.{task_name}.seq_len"
            )
        task_model = parse_section(
            ModelSettings, table.pop("model", {}), f"tasks.{task_name}.model", model
        )
        task_train = parse_section(
            TrainSettings, table.pop("train", {}), f"tasks.{task_name}.train", train
        )
        for seq_len in seq_lens:
            make_task(task_name, seq_len=seq_len, **table)  # validates the task parameters
        per_task[task_name] = (table, seq_lens, task_model, task_train)
    runs: list[RunConfig] = []
    for task_name, arch, clip, seed in itertools.product(
        axes["task"], axes["arch"], axes["clip"], axes["seed"]
    ):
        params, seq_lens, task_model, task_train = per_task[task_name]
        check_impl(task_model.impl, arch)
        runs.extend(
            RunConfig(
                sweep=name,
                task=task_name,
                task_params=params,
                arch=arch,
                seq_len=seq_len,
                clip=str(ClipSpec.parse(clip)),
                seed=seed,
                model=task_model,
                train=task_train,
                diagnostics=diagnostics,
            )
            for seq_len in seq_lens
        )
    return Sweep(name=name, runs=runs, source=source, imports=tuple(imports), base=base)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; :class:`ConfigError` on any problem."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot read sweep file ({exc.__class__.__name__}: {exc})"
        ) from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        return parse_sweep(
            data, default_name=path.stem, source=source, base=str(path.resolve().parent)
        )
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


__all__ = [
    "ClipSpec",
    "DiagnosticSettings",
    "ModelSettings",
    "RunConfig",
    "Sweep",
    "TrainSettings",
    "load_sweep",
    "parse_sweep",
]
