"""How a run configuration is hashed, for run ids and baseline group hashes (torch-free, so
``rnnbench compare`` and the pytest plugin stay light)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Fields added after stores and baselines existed, with the value every earlier run implicitly
#: had. At that value a field is left out of every hash (run ids, baseline group hashes), so
#: adding it changed no existing id: old stores resume and old baselines still compare.
HASH_NEUTRAL: dict[tuple[str, str], Any] = {
    ("diagnostics", "enabled"): True,
    ("model", "impl"): "auto",
    # the dynamics diagnostics (measured between steps, so they never change what trains)
    ("diagnostics", "jacobian_top_k"): 4,
    ("diagnostics", "jacobian_batch"): 4,
    ("diagnostics", "dynamics_at_checkpoints"): True,
    ("diagnostics", "lyapunov"): 8,
    ("diagnostics", "lyapunov_steps"): 200,
    ("diagnostics", "lyapunov_warmup"): 50,
    ("diagnostics", "saturation"): True,
    ("diagnostics", "task_probe"): True,
    ("diagnostics", "task_probe_size"): 512,
}
#: The same for top-level fields: a run of built-ins has no cell parameters and no user code.
TOP_NEUTRAL: dict[str, Any] = {"arch_params": {}, "code": {}}
#: Fields that describe how a run was swept, not what it trains: never hashed.
UNHASHED = ("sweep", "axes")


def canonical_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict (``RunConfig.to_dict()``, or one read back from a store or a baseline) as
    it is hashed: the :data:`HASH_NEUTRAL` fields dropped where they hold their neutral value."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for (section, name), neutral in HASH_NEUTRAL.items():
        table = out.get(section)
        if isinstance(table, dict) and name in table and table[name] == neutral:
            del table[name]
    for name, neutral in TOP_NEUTRAL.items():
        if name in out and out[name] == neutral:
            del out[name]
    return out


def _digest(data: Mapping[str, Any], default: Any = None) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_key(data: Mapping[str, Any]) -> str:
    """A run's id: the hash of its canonical config without the sweep's name, so the same run
    in two sweep files is the same run."""
    canonical = canonical_config(data)
    for name in UNHASHED:
        canonical.pop(name, None)
    return _digest(canonical)


def group_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration without its seed, sweep name and user-code version: the same for
    every seed of a group, and different as soon as any setting differs. The code version is
    left out so that the gate compares an edited cell with its baseline (and flags the edit);
    summaries refuse to pool two code versions (:func:`code_difference`)."""
    skip = ("seed", "code", *UNHASHED)
    return {k: v for k, v in canonical_config(data).items() if k not in skip}


def code_version(data: Mapping[str, Any]) -> str | None:
    """A short hash of the user code a run configuration ran (None for built-ins only): two
    runs with the same version ran the same source of every user module."""
    code = data.get("code")
    return _digest(code)[:8] if code else None


def code_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """'' where two run configurations ran the same user code, else which module differs:
    "module 'mycells' (source 3fa1c2... -> 9b20e7...)"."""
    a, b = dict(old.get("code") or {}), dict(new.get("code") or {})
    for name in sorted(set(a) | set(b)):
        if a.get(name) != b.get(name):
            return (
                f"module {name!r} (source {a.get(name) or 'absent'} -> {b.get(name) or 'absent'})"
            )
    return ""


def group_hash(data: Mapping[str, Any]) -> str:
    """The hash of :func:`group_config`: equal for the seeds of one configuration."""
    # default=str: a stored config's odd value (a date from TOML, say) still hashes; a run id
    # refuses it instead (run_key), as it always has.
    return _digest(group_config(data), default=str)


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

    # a field at its neutral value is left out of the hashed config: name that value, not None
    neutral = {f"{section}.{name}": value for (section, name), value in HASH_NEUTRAL.items()}
    a, b = leaves(group_config(old)), leaves(group_config(new))
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name, neutral.get(name)), b.get(name, neutral.get(name))
        if before != after:
            return f"{name}: {before!r} -> {after!r}"
    return f"config hash {group_hash(old)} -> {group_hash(new)}"
