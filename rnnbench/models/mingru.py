"""minGRU, a sequence core: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?" (arXiv:2410.01201), the log-space version of sec. 3.1 / App. B.

    z_t = σ(W_z x_t + b_z)                                the gate reads x_t only
    h̃_t = g(W_h x_t + b_h),  g(v) = v + 0.5 (v ≥ 0), σ(v) (v < 0)    positive, continuous
    h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t               h_0 = 0

Neither gate nor candidate reads h_{t-1}, so the recurrence is linear, h_t = a_t ⊙ h_{t-1} + b_t
with a_t = 1 − z_t and b_t = z_t ⊙ h̃_t > 0, and has two paths that compute the same function
(tests/test_modern.py checks 1e-5 relative at T = 1000; lucidrains/minGRU-pytorch issue #9 is a
user's report of the two disagreeing):

* ``sequential``: one fused ``addcmul`` per step, h ← a_t ⊙ h + b_t;
* ``scan``: the parallel log-space scan of Heinsen 2023, "Efficient Parallelization of a
  Ubiquitous Sequential Computation" (arXiv:2311.06281): with a*_t = Σ_{s≤t} log a_s,

      log h_t = a*_t + logcumsumexp_{s≤t}(log b_s − a*_s),

  log a = −softplus(k), log b = −softplus(−k) + log g(v) computed from the pre-activations
  (no log of a rounded-to-zero σ). It runs in float64: a*_t grows like t·|log a|, and its float32
  rounding (|a*|·6e-8) goes straight into log h_t as a relative error (measured: 2e-4 at
  T = 1000 in float32); in float64 the result is float32-exact (6e-8 against a float64 loop).

**One step at a time** (``init_state`` + ``step``, the optional pair of the sequence-core
contract that :mod:`rnnbench.diagnostics.dynamics` reads): the state is (h,), h_0 = 0, and
``step(x_t, (h,))`` is one iteration of the sequential path, h_t = σ(−k_t) ⊙ h_{t-1} +
σ(k_t) ⊙ g(v_t), the same ops in the same order. Its Jacobian ∂h_t/∂h_{t-1} = diag(σ(−k_t)) reads
x_t alone, so the dynamics of minGRU are input-driven decay with no chaos by construction. The
saturation diagnostic counts the sigmoids the step computes: σ(k_t) and σ(−k_t) (the update
gate, twice; the same slope) and g's σ(v_t), evaluated for every unit though only v_t < 0 uses it.

**The perturbation** (``[B, T, H]``, the hidden profile's) is added to the drive, b_t + p_t, so it
is added to h_t before h_t feeds step t+1 and its gradient is the total dL/dh_t. The sequential
path takes any p. The log-space path needs b_t + p_t > 0; the profile's p is zero, where
log(b_t + p_t) = log b_t and the gradient 1/b_t · (b_t ∂L/∂log b_t) is exact. A perturbation with
any non-zero entry is therefore routed through the sequential path (which is then ``impl``).

``impl`` (``auto`` | ``scan`` | ``sequential``): ``auto`` resolves by a fixed rule on the device
type and T (:func:`mingru_path`, from bench/modern_step.py), never a timing taken at run time;
the path that ran is the module's ``impl`` after a forward (recorded with the run).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.models.architectures import register_core

#: ``impl`` of minGRU: which path computes the recurrence
MinGruImpl = Literal["auto", "scan", "sequential"]


def mingru_path(requested: str, device_type: str, steps: int) -> str:
    """``requested`` with ``auto`` resolved, by a fixed rule on the device type (``steps`` is
    part of the rule's signature; no threshold on it was needed). On the CPU the sequential
    loop at every T: one fused ``addcmul`` per step beats ``logcumsumexp``, whose CPU kernel and
    its backward cost more than the whole loop (bench/modern_step.py --paths: the scan's
    training step is 6-10x the loop's at T = 16-2000, batch 128, hidden 128, 2 cores).
    Elsewhere the scan: a loop pays kernel launches at every step, the scan a fixed dozen
    (not measured in this session, which had no GPU; the paper's GPU timings, sec. 4, favour
    it)."""
    del steps
    if requested != "auto":
        return requested
    return "sequential" if device_type == "cpu" else "scan"


@register_core(
    "mingru",
    "minGRU (Feng et al. 2024): gates from x_t only, linear recurrence, log-space scan",
    builtin=True,
)
class MinGRU(nn.Module):
    """One minGRU layer (see the module docstring)."""

    def __init__(self, input_size: int, hidden_size: int, impl: MinGruImpl = "auto") -> None:
        super().__init__()
        if impl not in ("auto", "scan", "sequential"):
            raise ConfigError(f"archs.mingru.impl: expected auto, scan or sequential, got {impl!r}")
        self.hidden_size = hidden_size
        self.requested = impl
        self.impl: str = impl  # the resolved path, after a forward
        self.linear_z = nn.Linear(input_size, hidden_size)
        self.linear_h = nn.Linear(input_size, hidden_size)

    def forward(self, x: Tensor, perturbation: Tensor | None = None) -> Tensor:
        k = self.linear_z(x)
        v = self.linear_h(x)
        path = mingru_path(self.requested, x.device.type, x.shape[1])
        if path == "scan" and perturbation is not None and bool(perturbation.detach().any()):
            path = "sequential"  # the log-space drive needs b_t + p_t > 0: see the docstring
        self.impl = path
        if path == "scan":
            return log_space_scan(k, v, perturbation)
        return sequential(k, v, perturbation)

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor]:
        """The state before the first step: (h_0 = 0,), ``[B, H]``."""
        return (torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype),)

    def step(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor]:
        """One step of :func:`sequential`: h_t = σ(−k_t) ⊙ h_{t-1} + σ(k_t) ⊙ g(v_t)."""
        k = self.linear_z(x_t)
        drive = torch.sigmoid(k) * candidate(self.linear_h(x_t))
        return (torch.addcmul(drive, torch.sigmoid(-k), state[0]),)


def candidate(v: Tensor) -> Tensor:
    """g(v) = v + 0.5 for v ≥ 0, σ(v) below: positive, so that log h̃ exists."""
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def log_candidate(v: Tensor) -> Tensor:
    """log g(v), without a log of a rounded σ; relu keeps the unused branch finite."""
    return torch.where(v >= 0, torch.log(F.relu(v) + 0.5), -F.softplus(-v))


def sequential(k: Tensor, v: Tensor, perturbation: Tensor | None = None) -> Tensor:
    """h_t = a_t ⊙ h_{t-1} + b_t (+ p_t), one fused ``addcmul`` per step: ``[B, T, H]``.

    a_t = σ(−k_t) rather than 1 − σ(k_t), which loses a_t's relative precision as z_t → 1; and
    not the shorter ``lerp(h, h̃_t, z_t)``, whose h̃_t − h cancels: 2e-5 relative error at
    T = 1000 against float64, where this form stays below 1e-6."""
    a = torch.sigmoid(-k).unbind(1)  # unbind, never a[:, t]: see CellCore
    drive = torch.sigmoid(k) * candidate(v)
    if perturbation is not None:
        drive = drive + perturbation
    b = drive.unbind(1)
    h = torch.zeros_like(b[0])
    states = []
    for t, a_t in enumerate(a):
        h = torch.addcmul(b[t], a_t, h)
        states.append(h)
    return torch.stack(states, dim=1)


def log_space_scan(k: Tensor, v: Tensor, perturbation: Tensor | None = None) -> Tensor:
    """The same recurrence by Heinsen's log-space scan, in float64: ``[B, T, H]``."""
    k64, v64 = k.double(), v.double()
    log_a = -F.softplus(k64)  # log(1 − σ(k))
    log_b = -F.softplus(-k64) + log_candidate(v64)  # log σ(k) + log g(v)
    if perturbation is not None:
        log_b = torch.log(log_b.exp() + perturbation.double())  # exact at p = 0
    a_star = log_a.cumsum(dim=1)
    log_h = a_star + torch.logcumsumexp(log_b - a_star, dim=1)
    return log_h.exp().to(k.dtype)
