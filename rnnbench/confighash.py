"""How a run configuration is hashed, for run ids and baseline group hashes (torch-free, so
``rnnbench compare`` and the pytest plugin stay light)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Fields added after stores and baselines existed, with the value every earlier run implicitly
#: had. At that value a field is left out of every hash (run ids, baseline group hashes), so
#: adding it changed no existing id: old stores resume and old baselines still compare.
HASH_NEUTRAL: dict[tuple[str, str], Any] = {
    ("diagnostics", "enabled"): True,
    ("model", "impl"): "auto",
}


def canonical_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict (``RunConfig.to_dict()``, or one read back from a store or a baseline) as
    it is hashed: the :data:`HASH_NEUTRAL` fields dropped where they hold their neutral value."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()}
    for (section, name), neutral in HASH_NEUTRAL.items():
        table = out.get(section)
        if isinstance(table, dict) and name in table and table[name] == neutral:
            del table[name]
    return out
