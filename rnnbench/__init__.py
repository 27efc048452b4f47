"""rnnbench: measure why recurrent networks do or do not learn long-range dependencies.

The public API (the CLI is a thin layer over it)::

    task = rnnbench.make_task("copy", seq_len=100)
    model = rnnbench.make_model("lstm", task, hidden_size=128, seed=0)
    batch = task.sample(64, torch.Generator().manual_seed(0))
    loss = task.loss(model(batch.x), batch)
    norms = rnnbench.gradient_norms_through_time(model, task, batch)   # exact ||dL/dh_t||
    rnnbench.run_sweep("tasks/smoke.toml", store="results.db")
    frame = rnnbench.load_results("results.db")
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

# The public names, resolved on first use (PEP 562): `import rnnbench` - and the pytest plugin,
# which pytest loads in every session of an environment that has rnnbench installed - stays
# cheap until something actually needs torch.
_LAZY = {
    "RunConfig": "config",
    "Sweep": "config",
    "load_sweep": "config",
    "parse_sweep": "config",
    "ConfigError": "errors",
    "RnnbenchError": "errors",
    "run_sweep": "execution",
    "gradient_norms_through_time": "gradients",
    "summarize_profile": "gradients",
    "memory_probe": "memory",
    "task_spans": "memory",
    "ARCHITECTURES": "models",
    "make_model": "models",
    "register_cell": "models",
    "Baseline": "regression",
    "compare": "regression",
    "load_baseline": "regression",
    "Store": "store",
    "load_results": "store",
    "TASKS": "tasks",
    "Batch": "tasks",
    "Task": "tasks",
    "make_task": "tasks",
    "CLIPPERS": "training",
    "OPTIMIZERS": "training",
    "execute_run": "training",
    "train_run": "training",
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
    from rnnbench.config import RunConfig, Sweep, load_sweep, parse_sweep
    from rnnbench.errors import ConfigError, RnnbenchError
    from rnnbench.execution import run_sweep
    from rnnbench.gradients import gradient_norms_through_time, summarize_profile
    from rnnbench.memory import memory_probe, task_spans
    from rnnbench.models import ARCHITECTURES, make_model, register_cell
    from rnnbench.regression import Baseline, compare, load_baseline
    from rnnbench.store import Store, load_results
    from rnnbench.tasks import TASKS, Batch, Task, make_task
    from rnnbench.training import CLIPPERS, OPTIMIZERS, execute_run, train_run

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
    "Store",
    "Sweep",
    "Task",
    "__version__",
    "compare",
    "execute_run",
    "gradient_norms_through_time",
    "load_baseline",
    "load_results",
    "load_sweep",
    "make_model",
    "make_task",
    "memory_probe",
    "parse_sweep",
    "register_cell",
    "run_sweep",
    "summarize_profile",
    "task_spans",
    "train_run",
]
