"""The configuration of one run: settings dataclasses, clipping specs and :class:`RunConfig`.

Torch-free, so the results store, the gate and the reports read stored configurations without
loading the training stack. Each field's allowed values live in its metadata: a range
(``bounds``) or the kind of registry that names the choices (checked by the sweep parser, which
knows the registries: :mod:`rnnbench.sweep`). Sweep files are read by :mod:`rnnbench.sweep`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field
from typing import Any

from rnnbench.config.fields import bounds
from rnnbench.config.hashing import run_key
from rnnbench.errors import ConfigError

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


#: Clipping modes; the functions live in :mod:`rnnbench.training.optim` (this names what is
#: allowed).
CLIP_MODES = ("none", "norm", "value")


@dataclass(frozen=True)
class ModelSettings:
    hidden_size: int = field(default=64, metadata=bounds(1, 65_536))  # units per layer
    num_layers: int = field(default=1, metadata=bounds(1, 64))  # stacked recurrent layers
    init: str = field(default="default", metadata={"registry": "init"})
    init_gain: float = field(default=1.0, metadata=bounds(0.0, 1e6))  # scale of the recurrent init
    # how a built-in core trains: "fused" (nn.RNN/LSTM/GRU), "loop" (torch.*_cell per step) or
    # "auto" (by device, architecture and batch x hidden x T; rnnbench.models.cores.train_impl).
    # The two round differently, so the resolved choice is recorded (metrics.impl).
    impl: str = field(default="auto", metadata={"registry": "impl"})


@dataclass(frozen=True)
class TrainSettings:
    steps: int = field(default=200, metadata=bounds(1, 10_000_000))  # optimizer steps
    batch_size: int = field(default=64, metadata=bounds(1, 1_000_000))
    lr: float = field(default=1e-3, metadata=bounds(1e-12, 1e3))
    optimizer: str = field(default="adam", metadata={"registry": "optimizer"})
    momentum: float = field(default=0.0, metadata=bounds(0.0, 1.0))  # sgd / rmsprop momentum
    weight_decay: float = field(default=0.0, metadata=bounds(0.0, 1.0))


@dataclass(frozen=True)
class DiagnosticSettings:
    # false: train and evaluate only. The per-step loss and pre-clip gradient norm, the
    # divergence check and the final evaluation (solved, normalized_loss) stay; the gradient
    # profiles, per-parameter norms and the memory probe are skipped, so their record fields
    # are NaN / None / empty. For timing a sweep, or when only the learning outcome matters.
    enabled: bool = True
    # gradient profiles and per-parameter norms at init, at this many checkpoints, and at the end
    checkpoints: int = field(default=4, metadata=bounds(0, 1000))
    # the fixed held-out set that judges `solved` (same for every run of a task)
    eval_size: int = field(default=1000, metadata=bounds(1, 10_000_000))
    # the fixed diagnostic batch of the gradient profile
    profile_batch_size: int = field(default=64, metadata=bounds(1, 1_000_000))
    # memory-capacity probe: lags 1..probe_max_lag (capped at the sequence length - 1)
    probe_max_lag: int = field(default=50, metadata=bounds(0, 100_000))
    probe_size: int = field(default=256, metadata=bounds(2, 1_000_000))  # probe sequences
    probe_ridge: float = field(default=1e-3, metadata=bounds(0.0, 1e6))  # ridge penalty
    # loss / gradient-norm curves are stored down-sampled to at most this many points
    curve_points: int = field(default=500, metadata=bounds(2, 1_000_000))
    # The dynamics (rnnbench.diagnostics.dynamics), each switched off by 0 / false.
    # The k largest singular values of the step Jacobian ds_{t+1}/ds_t at every step, on the
    # first `jacobian_batch` sequences of the profile batch, at every profile checkpoint
    # (`dynamics_at_checkpoints = false`: at init and at the end only; so is the saturation)
    jacobian_top_k: int = field(default=4, metadata=bounds(0, 4096))
    jacobian_batch: int = field(default=4, metadata=bounds(1, 1_000_000))
    dynamics_at_checkpoints: bool = True
    # The `lyapunov` largest Lyapunov exponents at init and at the end (QR method), along a
    # trajectory of `lyapunov_steps` steps driven by concatenated task sequences
    # (`jacobian_batch` of them), the first `lyapunov_warmup` steps not counted
    lyapunov: int = field(default=8, metadata=bounds(0, 4096))
    lyapunov_steps: int = field(default=200, metadata=bounds(2, 1_000_000))
    lyapunov_warmup: int = field(default=50, metadata=bounds(0, 1_000_000))
    # the fraction of saturated gate and tanh units per step (and the LSTM's forget gate)
    saturation: bool = True
    # the task memory probe: decode what the task needs from h_t at every delay
    task_probe: bool = True
    task_probe_size: int = field(default=512, metadata=bounds(4, 1_000_000))

    def __post_init__(self) -> None:
        if self.lyapunov and self.lyapunov_warmup >= self.lyapunov_steps - 1:
            raise ConfigError(
                f"diagnostics.lyapunov_warmup: must be below diagnostics.lyapunov_steps - 1 "
                f"(= {self.lyapunov_steps - 1}), got {self.lyapunov_warmup}"
            )


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
    #: keyword arguments of a user cell's constructor (``[archs.NAME]``); part of the run id
    arch_params: dict[str, Any] = field(default_factory=dict)
    #: the user code the run runs: module name -> hash of its source (the sweep's ``imports``
    #: and the modules defining its user cell and task). Part of the run id, so an edited cell
    #: is trained again; empty for built-ins only.
    code: dict[str, str] = field(default_factory=dict)
    #: the fields this run's sweep varies beyond the five fixed axes, with this run's values
    #: (``{"train.lr": 0.003}``): what reports group by. Not part of the run id: the values are
    #: in the fields themselves, and the same run in two sweeps is the same run.
    axes: dict[str, Any] = field(default_factory=dict)

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

    @functools.cached_property
    def run_id(self) -> str:
        """Canonical hash of the config (sorted-key JSON); the sweep's name is not part of it,
        so the same run in two sweep files is the same run."""
        return run_key(self.to_dict())
