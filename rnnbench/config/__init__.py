"""What a run is, as data: torch-free, so stored configurations are read without torch.

* ``schema``: :class:`RunConfig` and its settings (model, train, diagnostics), :class:`ClipSpec`
* ``fields``: single-value checks and TOML-table parsing against a field's type and range
* ``hashing``: canonical configs, run ids and group hashes
"""

from rnnbench.config.hashing import canonical_config, group_hash, run_key
from rnnbench.config.schema import (
    CLIP_MODES,
    CONFIG_VERSION,
    ClipSpec,
    DiagnosticSettings,
    ModelSettings,
    RunConfig,
    TrainSettings,
)

__all__ = [
    "CLIP_MODES",
    "CONFIG_VERSION",
    "ClipSpec",
    "DiagnosticSettings",
    "ModelSettings",
    "RunConfig",
    "TrainSettings",
    "canonical_config",
    "group_hash",
    "run_key",
]
