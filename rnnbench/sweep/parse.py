"""Sweep files: a TOML grid whose Cartesian product is a list of :class:`RunConfig`.

Validation is strict: an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` with a one-line message naming the field and the allowed values. The
sweep is checked against the registries of every layer below (tasks, architectures,
implementations, initialisations, optimizers), which is why it sits above training.

Layout (every section but ``[grid]`` optional)::

    name = "smoke"
    [grid]                  # the Cartesian product of these axes is the sweep
    task = ["copy", "adding"]
    arch = ["rnn", "lstm", "gru"]
    seq_len = [20, 50]
    clip = ["none", "norm:1.0"]
    seed = [0, 1]
    [grid.train]            # any settings field as an axis (also grid.model, grid.diagnostics)
    lr = [1e-3, 3e-3]
    [grid.tasks.adding]     # a task's parameters, multiplying only that task's runs
    placement = ["halves", "anywhere"]
    [grid.archs.mycell]     # a user cell's parameters, multiplying only that cell's runs
    gate_bias = [0.0, 1.0]
    [archs.mycell]          # a user cell's constructor parameters
    [model]                 # ModelSettings
    [train]                 # TrainSettings
    [diagnostics]           # DiagnosticSettings
    [tasks.copy]            # task parameters (e.g. solve_accuracy), plus optional
    [tasks.copy.model]      #   per-task overrides of [model] and [train]
    [tasks.copy.train]
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnbench.config.fields import Choices, bounds, check_value, parse_section
from rnnbench.config.schema import (
    ClipSpec,
    DiagnosticSettings,
    ModelSettings,
    RunConfig,
    TrainSettings,
)
from rnnbench.diagnostics.task_memory import check_memory_items
from rnnbench.errors import ConfigError
from rnnbench.models import ARCHITECTURES, IMPLS, INITS, CellUse, check_cells, check_impl
from rnnbench.registry import Registry, import_plugins, source_hash
from rnnbench.sweep.grid import FIXED_AXES, NESTED, Axis, GridAxes, combinations, parse_grid_axes
from rnnbench.tasks import TASKS, make_task, task_for
from rnnbench.training import OPTIMIZERS

GRID_AXES = FIXED_AXES
TOP_LEVEL_KEYS = ("name", "imports", "grid", "model", "train", "diagnostics", "tasks", "archs")

#: The registries named by the settings' field metadata (``{"registry": "optimizer"}``).
CHOICES: Choices = {"impl": IMPLS, "init": INITS, "optimizer": OPTIMIZERS}


@dataclass(frozen=True)
class Sweep:
    name: str
    runs: list[RunConfig]
    source: str = ""  # the sweep file's text, stored with the results
    imports: tuple[str, ...] = ()  # modules that register user tasks / cells (also in workers)
    base: str | None = None  # the sweep file's folder, put on sys.path for ``imports``


@dataclass(frozen=True)
class _TaskPlan:
    """One task's share of the grid: its parameters, sequence lengths and settings."""

    params: dict[str, Any]
    seq_lens: list[int]
    model: ModelSettings
    train: TrainSettings


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
            check_value(path, value, int, bounds(lo, hi), CHOICES)
        elif axis == "clip":
            ClipSpec.parse(value, path)
        elif known is not None and not isinstance(value, str):
            raise ConfigError(
                f"{path}: expected {axis} names (strings), got {value!r}; allowed: "
                f"{', '.join(known.names())}"
            )
        elif known is not None and value not in known:
            raise ConfigError(
                f"{path}: unknown {axis} {value!r}; allowed: {', '.join(known.names())}"
            )
    return values


def _grid(data: dict[str, Any]) -> dict[str, list[Any]]:
    grid = data.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError("grid: required table with axes " + ", ".join(GRID_AXES))
    extra = sorted(set(grid) - set(GRID_AXES) - set(NESTED))
    if extra:
        raise ConfigError(
            f"grid.{extra[0]}: unknown axis; allowed: {', '.join(GRID_AXES)}, and the tables "
            f"{', '.join(f'[grid.{n}]' for n in NESTED)}"
        )
    return {
        "task": _grid_axis(grid, "task", TASKS),
        "arch": _grid_axis(grid, "arch", ARCHITECTURES),
        "seq_len": _grid_axis(grid, "seq_len") if "seq_len" in grid else [],
        "clip": _grid_axis(grid, "clip"),
        "seed": _grid_axis(grid, "seed"),
    }


def _task_tables(data: dict[str, Any], axes: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """The ``[tasks.NAME]`` tables, each checked to name a task of the grid."""
    tables = data.get("tasks", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"tasks: expected a table of per-task settings, got {tables!r}")
    for task_name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"tasks.{task_name}: expected a table, got {table!r}")
        if task_name not in axes["task"]:
            raise ConfigError(
                f"tasks.{task_name}: not in grid.task; allowed: {', '.join(axes['task'])}"
            )
    for task_name in axes["task"]:
        if not axes["seq_len"] and "seq_len" not in tables.get(task_name, {}):
            raise ConfigError(f"grid.seq_len: required (or tasks.{task_name}.seq_len)")
    return tables


def _task_plan(
    task_name: str,
    table: dict[str, Any],
    grid_seq_lens: list[int],
    model: ModelSettings,
    train: TrainSettings,
) -> _TaskPlan:
    table = dict(table)
    seq_lens = grid_seq_lens
    if "seq_len" in table:  # a per-task list of T overrides grid.seq_len for that task
        # Checked like grid.seq_len, but errors name the key the user wrote.
        seq_lens = _grid_axis(
            {"seq_len": table.pop("seq_len")}, "seq_len", path=f"tasks.{task_name}.seq_len"
        )
    where = f"tasks.{task_name}"
    task_model = parse_section(
        ModelSettings, table.pop("model", {}), f"{where}.model", CHOICES, model
    )
    task_train = parse_section(
        TrainSettings, table.pop("train", {}), f"{where}.train", CHOICES, train
    )
    for seq_len in seq_lens:
        make_task(task_name, seq_len=seq_len, **table)  # validates the task parameters
    return _TaskPlan(table, seq_lens, task_model, task_train)


def _header(data: dict[str, Any], default_name: str, base: str | None) -> tuple[str, list[str]]:
    """The sweep's name and ``imports``, validated; the imports are imported (user tasks and
    cells must be registered before the grid names them)."""
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; allowed: {', '.join(TOP_LEVEL_KEYS)}")
    imports = data.get("imports", [])
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise ConfigError(f"imports: expected a list of module names, got {imports!r}")
    import_plugins(imports, base)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name: expected a non-empty string, got {name!r}")
    return name, imports


def _arch_tables(data: dict[str, Any], archs: list[str]) -> dict[str, dict[str, Any]]:
    """The ``[archs.NAME]`` tables: each names an architecture of the grid, and its keys are
    parameters of that cell's constructor, checked against its signature."""
    tables = data.get("archs", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"archs: expected a table of per-architecture parameters, got {tables!r}")
    out = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"archs.{name}: expected a table of parameters, got {table!r}")
        if name not in archs:
            raise ConfigError(f"archs.{name}: not in grid.arch; allowed: {', '.join(archs)}")
        out[name] = ARCHITECTURES.get(name).check_params(name, table, f"archs.{name}")
    return out


def parse_sweep(
    data: dict[str, Any], *, default_name: str = "sweep", source: str = "", base: str | None = None
) -> Sweep:
    """Validate a parsed sweep document, expand its grid and check its user cells."""
    name, imports = _header(data, default_name, base)
    axes = _grid(data)
    model = parse_section(ModelSettings, data.get("model", {}), "model", CHOICES)
    train = parse_section(TrainSettings, data.get("train", {}), "train", CHOICES)
    diagnostics = parse_section(
        DiagnosticSettings, data.get("diagnostics", {}), "diagnostics", CHOICES
    )
    tables = _task_tables(data, axes)
    plans = {
        task: _task_plan(task, tables.get(task, {}), axes["seq_len"], model, train)
        for task in axes["task"]
    }
    nested = parse_grid_axes(
        data["grid"],
        data,
        axes["task"],
        axes["arch"],
        CHOICES,
        {task: plan.seq_lens[0] for task, plan in plans.items()},
    )
    grid = _Grid(
        name, axes, plans, _arch_tables(data, axes["arch"]), nested, diagnostics, _Code(imports)
    )
    runs = grid.expand()
    check_cells(_cell_uses(runs))
    _check_task_probes(runs)
    return Sweep(name=name, runs=runs, source=source, imports=tuple(imports), base=base)


def _keys(combo: dict[str, Any]) -> dict[str, Any]:
    """``{"tasks.adding.placement": v}`` -> ``{"placement": v}``."""
    return {path.rsplit(".", 1)[1]: value for path, value in combo.items()}


@dataclass
class _Code:
    """The run's code versions: source hashes of the sweep's imports and of the modules that
    define its user cell and task (read once per module)."""

    imports: list[str]
    _hashes: dict[str, str] = field(default_factory=dict)

    def _hash(self, module: str) -> str:
        if module not in self._hashes:
            self._hashes[module] = source_hash(module)
        return self._hashes[module]

    def of(self, task: str, arch: str) -> dict[str, str]:
        modules = list(self.imports)
        spec = ARCHITECTURES.get(arch)
        if spec.module is not None:
            modules.append(spec.module)
        task_module = TASKS.get(task).__module__
        if not task_module.startswith("rnnbench."):
            modules.append(task_module)
        return {module: self._hash(module) for module in sorted(set(modules))}


@dataclass
class _Grid:
    """A sweep's axes, expanded into runs by :meth:`expand`."""

    name: str
    fixed: dict[str, list[Any]]
    plans: dict[str, _TaskPlan]
    arch_params: dict[str, dict[str, Any]]
    nested: GridAxes
    diagnostics: DiagnosticSettings
    code: _Code

    def _settings(self, plan: _TaskPlan, combo: dict[str, Any]) -> tuple[Any, Any, Any]:
        def part(section: str) -> dict[str, Any]:
            return {p.split(".", 1)[1]: v for p, v in combo.items() if p.startswith(section + ".")}

        return (
            dataclasses.replace(plan.model, **part("model")),
            dataclasses.replace(plan.train, **part("train")),
            dataclasses.replace(self.diagnostics, **part("diagnostics")),
        )

    def _arch_combos(self, arch: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(cell parameters, swept values) of each combination of ``arch``'s axes."""
        out = []
        for combo in combinations(self.nested.archs.get(arch, [])):
            params = {**self.arch_params.get(arch, {}), **_keys(combo)}
            spec = ARCHITECTURES.get(arch).params
            if spec is not None:
                spec.check_required(f"archs.{arch}", params)
            out.append((params, combo))
        return out

    def expand(self) -> list[RunConfig]:
        settings_axes: list[Axis] = [a for axes in self.nested.settings.values() for a in axes]
        runs: list[RunConfig] = []
        for task_name in self.fixed["task"]:
            plan = self.plans[task_name]
            for task_combo in combinations(self.nested.tasks.get(task_name, [])):
                params = {**plan.params, **_keys(task_combo)}
                for seq_len in plan.seq_lens:  # the combination as a whole, at every T
                    make_task(task_name, seq_len=seq_len, **params)
                for combo in combinations(settings_axes):
                    model, train, diagnostics = self._settings(plan, combo)
                    for arch in self.fixed["arch"]:
                        check_impl(model.impl, arch)
                        for arch_params, arch_combo in self._arch_combos(arch):
                            template = RunConfig(
                                sweep=self.name,
                                task=task_name,
                                task_params=params,
                                arch=arch,
                                seq_len=0,
                                clip="none",
                                seed=0,
                                model=model,
                                train=train,
                                diagnostics=diagnostics,
                                arch_params=arch_params,
                                code=self.code.of(task_name, arch),
                                axes={**task_combo, **combo, **arch_combo},
                            )
                            runs.extend(self._fixed_runs(template, plan.seq_lens))
        return runs

    def _fixed_runs(self, template: RunConfig, seq_lens: list[int]) -> list[RunConfig]:
        return [
            dataclasses.replace(
                template, seq_len=seq_len, clip=str(ClipSpec.parse(clip)), seed=seed
            )
            for clip, seed, seq_len in itertools.product(
                self.fixed["clip"], self.fixed["seed"], seq_lens
            )
        ]


def _check_task_probes(runs: list[RunConfig]) -> None:
    """Each distinct task of the runs that take the task probe declares items it can read
    (``Task.memory_items``): a malformed one is exit 2 here, not an error in every run."""
    seen: set[tuple[str, str, int]] = set()
    for run in runs:
        key = (run.task, repr(run.task_params), run.seq_len)
        diag = run.diagnostics
        if key not in seen and diag.enabled and diag.task_probe:
            seen.add(key)
            check_memory_items(task_for(run))


def _cell_uses(runs: list[RunConfig]) -> list[CellUse]:
    """The distinct ways the runs build a cell or sequence core, for the contract check."""
    uses: dict[tuple[Any, ...], CellUse] = {}
    for run in runs:
        # every cell and core, built-in ones too (lru, mingru, lstm_ln, gru_ln): a setting
        # they cannot take (an init without weight_hh, an odd LRU width) is exit 2 before the
        # store is touched, not an error in every run
        if ARCHITECTURES.get(run.arch).params is None:
            continue
        m = run.model
        key = (
            run.arch,
            repr(run.arch_params),
            run.task,
            repr(run.task_params),
            m.hidden_size,
            m.num_layers,
            m.init,
            m.init_gain,
        )
        if key not in uses:
            uses[key] = CellUse(
                run.arch,
                tuple(run.arch_params.items()),
                task_for(run),
                m.hidden_size,
                m.num_layers,
                m.init,
                m.init_gain,
            )
    return list(uses.values())


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
