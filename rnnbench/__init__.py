"""rnnbench: measure why recurrent networks do or do not learn long-range dependencies.

The public API (the CLI is a thin layer over it)::

    task = rnnbench.make_task("copy", seq_len=100)
    model = rnnbench.make_model("lstm", task, hidden_size=128, seed=0)
    batch = task.sample(64, torch.Generator().manual_seed(0))
    loss = task.loss(model(batch.x), batch)
    norms = rnnbench.gradient_norms_through_time(model, task, batch)   # exact ||dL/dh_t||
    sigma = rnnbench.jacobian_singular_values(model, task, batch, k=4)  # [T-1, 4] per step
    exponents = rnnbench.lyapunov_spectrum(model, task, batch, k=8)     # nats per step
    rnnbench.run_sweep("tasks/smoke.toml", store="results.db")
    frame = rnnbench.load_results("results.db")
"""

from typing import TYPE_CHECKING, Any

from rnnbench.version import __version__

# The public names, resolved on first use (PEP 562): `import rnnbench` - and the pytest plugin,
# which pytest loads in every session of an environment that has rnnbench installed - stays
# cheap until something actually needs torch.
_LAZY = {
    "RunConfig": "config.schema",
    "ConfigError": "errors",
    "RnnbenchError": "errors",
    "Sweep": "sweep.parse",
    "load_sweep": "sweep.parse",
    "parse_sweep": "sweep.parse",
    "run_sweep": "execution.runner",
    "gradient_norms_through_time": "diagnostics.gradients",
    "summarize_profile": "diagnostics.summary",
    "memory_probe": "diagnostics.memory",
    "jacobian_singular_values": "diagnostics.dynamics",
    "lyapunov_spectrum": "diagnostics.dynamics",
    "saturation": "diagnostics.dynamics",
    "task_memory_probe": "diagnostics.task_memory",
    "task_spans": "results.spans",
    "ARCHITECTURES": "models.architectures",
    "make_model": "models.model",
    "register_cell": "models.architectures",
    "register_core": "models.architectures",
    "Baseline": "gate.baseline",
    "compare": "gate.compare",
    "load_baseline": "gate.baseline",
    "RunRecord": "results.record",
    "Store": "results.store",
    "load_results": "results.store",
    "TASKS": "tasks",
    "Batch": "tasks",
    "Task": "tasks",
    "make_task": "tasks",
    "CLIPPERS": "training.optim",
    "OPTIMIZERS": "training.optim",
    "execute_run": "training.loop",
    "train_run": "training.loop",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rnnbench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"rnnbench.{module}"), name)
    globals()[name] = value  # resolve once
    return value


if TYPE_CHECKING:
    from rnnbench.config.schema import RunConfig
    from rnnbench.diagnostics.dynamics import (
        jacobian_singular_values,
        lyapunov_spectrum,
        saturation,
    )
    from rnnbench.diagnostics.gradients import gradient_norms_through_time
    from rnnbench.diagnostics.memory import memory_probe
    from rnnbench.diagnostics.summary import summarize_profile
    from rnnbench.diagnostics.task_memory import task_memory_probe
    from rnnbench.errors import ConfigError, RnnbenchError
    from rnnbench.execution.runner import run_sweep
    from rnnbench.gate.baseline import Baseline, load_baseline
    from rnnbench.gate.compare import compare
    from rnnbench.models.architectures import ARCHITECTURES, register_cell, register_core
    from rnnbench.models.model import make_model
    from rnnbench.results.record import RunRecord
    from rnnbench.results.spans import task_spans
    from rnnbench.results.store import Store, load_results
    from rnnbench.sweep.parse import Sweep, load_sweep, parse_sweep
    from rnnbench.tasks import TASKS, Batch, Task, make_task
    from rnnbench.training.loop import execute_run, train_run
    from rnnbench.training.optim import CLIPPERS, OPTIMIZERS

__all__ = [
    "ARCHITECTURES",
    "CLIPPERS",
    "OPTIMIZERS",
    "TASKS",
    "Baseline",
    "Batch",
    "ConfigError",
    "RnnbenchError",
    "RunConfig",
    "RunRecord",
    "Store",
    "Sweep",
    "Task",
    "__version__",
    "compare",
    "execute_run",
    "gradient_norms_through_time",
    "jacobian_singular_values",
    "load_baseline",
    "load_results",
    "load_sweep",
    "lyapunov_spectrum",
    "make_model",
    "make_task",
    "memory_probe",
    "parse_sweep",
    "register_cell",
    "register_core",
    "run_sweep",
    "saturation",
    "summarize_profile",
    "task_memory_probe",
    "task_spans",
    "train_run",
]
