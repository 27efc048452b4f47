"""The Linear Recurrent Unit (LRU), a sequence core: Orvieto, Smith, Gu, Fernando, Gulcehre,
Pascanu & De 2023, "Resurrecting Recurrent Neural Networks for Long Sequences" (ICML).

One layer maps inputs u_t (width I) to outputs o_t (width H) through N = H / 2 complex units:

    x_t = λ ⊙ x_{t-1} + γ ⊙ (B u_t)              x_0 = 0, λ, γ ∈ C^N, B ∈ C^{N×I}
    λ   = exp(−exp(ν) + i·exp(θ))                 |λ| = exp(−exp(ν)) < 1 for every ν (sec. 3.2)
    y_t = Re(C x_t) + D u_t                       C ∈ C^{H×N}
    o_t = GLU(GELU(y_t)) + u_t                    GLU(v) = (W₁v + b₁) ⊙ σ(W₂v + b₂)

* **Ring initialisation** (sec. 3.3, App. A): |λ| uniform on the ring r_min ≤ |λ| ≤ r_max (by
  area: |λ|² ~ U[r_min², r_max²]) and arg λ ~ U[0, max_phase]; the parameters ``r_min``,
  ``r_max``, ``max_phase`` are settable from ``[archs.lru]``.
* **Normalisation** (sec. 3.3): γ = exp(γ_log), initialised to sqrt(1 − |λ|²) so that a
  white-noise input gives a state of the input's variance however close |λ| is to 1; γ_log is
  trained, as in the paper's App. A code.
* **D**: a diagonal skip (a vector) when I = H, as in the paper; where the widths differ (the
  first layer reads the task's few input features) it is a dense I → H projection, the only
  linear map that keeps "u_t reaches y_t directly". The residual ``+ u_t`` around the block is
  likewise only where I = H.
* **Block nonlinearity** (sec. 3.1 / Fig. 1 and App. D: "GELU followed by a GLU, with a skip
  connection"): so that stacked layers are not one big linear system. The paper's pre-norm
  (LayerNorm/BatchNorm before the LRU) is left out: it is not part of the recurrence whose
  gradients rnnbench measures, and the other cores have none.

**The state the hidden profile sees.** rnnbench's hidden state is real, of width H. Here it is
the real view of the complex state, s_t = [Re x_t ; Im x_t] (H = 2N reals; an odd
``hidden_size`` is a :class:`ConfigError`). ``perturbation [B, T, H]`` is read in the same
layout, p = p[..., :N] + i·p[..., N:], and added to the drive: x_t = λ x_{t-1} + γ B u_t + p_t,
so it is added to x_t before x_t feeds step t+1 and the output. Its gradient is therefore exactly
the total gradient wrt the state: dL/dRe x_t in its first N entries, dL/dIm x_t in the last N.

**One step at a time** (``init_state`` + ``step``, the optional pair of the sequence-core
contract that :mod:`rnnbench.diagnostics.dynamics` reads): the state is the real tuple
(Re x, Im x), each ``[B, N]``, from x_0 = 0, and ``step(u_t, state)`` is one iteration of the
sequential path, x_t = λ ⊙ x_{t-1} + γ ⊙ (B u_t), in complex arithmetic as that path does it.
Its Jacobian is constant: a rotation by arg λ_j scaled by |λ_j| on each (Re, Im) pair, so the
singular values and the Lyapunov exponents are |λ_j| and log |λ_j|, each twice.

**Two paths for the recurrence**, which agree to float rounding (tests/test_modern.py):

* ``sequential``: x_t = λ x_{t-1} + b_t, one complex multiply-add per step;
* ``scan``: λ is time-invariant, so the scan is a convolution with λ^k. It is done in chunks of
  K ≈ sqrt(T) steps: inside a chunk, one batched matmul with the K×K lower-triangular Toeplitz
  matrix λ^{i−j} (each power computed as exp(k·log λ), not by repeated products); across
  chunks, a T/K-step carry c ← λ^K c + (chunk end). O(T·K) work in matmuls and only T/K Python
  steps, where the sequential path takes T of them; no FFT, whose rounding is relative to the
  largest term and would spoil the small, far-back gradients the profile measures.

``impl`` (``auto`` | ``scan`` | ``sequential``): ``auto`` resolves by a fixed rule on the
device type and T (:func:`lru_path`), never a timing taken at run time; the path that ran is
the module's ``impl`` after a forward (recorded with the run).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.errors import ConfigError
from rnnbench.models.architectures import register_core

#: ``impl`` of the LRU: which path computes the recurrence
LruImpl = Literal["auto", "scan", "sequential"]


def lru_path(requested: str, device_type: str, steps: int) -> str:
    """``requested`` with ``auto`` resolved, by a fixed rule on the device type (``steps`` is
    part of the rule's signature; no threshold on it was needed). On the CPU the sequential
    loop at every T: its two complex ops per step cost less than the chunked scan's layout
    copies for the batched matmul (bench/modern_step.py --paths: the scan's training step is
    1.3-1.5x the loop's at T = 16-2000, batch 128, hidden 128, 2 cores). Elsewhere the scan:
    a loop pays kernel launches at every step, the scan a fixed few dozen (not measured in
    this session, which had no GPU)."""
    del steps
    if requested != "auto":
        return requested
    return "sequential" if device_type == "cpu" else "scan"


@register_core(
    "lru",
    "Linear Recurrent Unit (Orvieto et al. 2023): diagonal complex linear recurrence, "
    "ring init, GELU+GLU block",
    builtin=True,
)
class LRU(nn.Module):
    """One LRU layer with its GELU+GLU block (see the module docstring)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2 * math.pi,
        impl: LruImpl = "auto",
    ) -> None:
        super().__init__()
        _check_ring(hidden_size, r_min, r_max, max_phase, impl)
        n = hidden_size // 2
        self.hidden_size = hidden_size
        self.requested = impl
        self.impl: str = impl  # the resolved path, after a forward
        nu_log, theta_log, gamma_log = ring_init(n, r_min, r_max, max_phase)
        self.nu_log = nn.Parameter(nu_log)
        self.theta_log = nn.Parameter(theta_log)
        self.gamma_log = nn.Parameter(gamma_log)
        # B ~ CN(0, 1/I) and C ~ CN(0, 1/N): unit-variance maps (App. A, "glorot" scale)
        self.b_re = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.b_im = nn.Parameter(torch.randn(n, input_size) / math.sqrt(2 * input_size))
        self.c_re = nn.Parameter(torch.randn(hidden_size, n) / math.sqrt(n))
        self.c_im = nn.Parameter(torch.randn(hidden_size, n) / math.sqrt(n))
        self.residual = input_size == hidden_size
        d_shape = (hidden_size,) if self.residual else (hidden_size, input_size)
        scale = 1.0 if self.residual else math.sqrt(input_size)  # the paper's D ~ N(0, 1)
        self.d = nn.Parameter(torch.randn(d_shape) / scale)
        self.glu = nn.Linear(hidden_size, 2 * hidden_size)

    def log_lambda(self) -> Tensor:
        """log λ = −exp(ν) + i·exp(θ), ``[N]`` complex."""
        return torch.complex(-self.nu_log.exp(), self.theta_log.exp())

    def input_map(self) -> Tensor:
        """γ ⊙ B as one real ``[2N, I]`` matrix whose rows interleave (Re, Im) per unit, so that
        one real matmul gives the drive γ ⊙ (B u_t) in the layout view_as_complex reads without
        a copy."""
        w_in = torch.stack([self.b_re, self.b_im], dim=1) * self.gamma_log.exp()[:, None, None]
        return w_in.reshape(2 * self.b_re.shape[0], -1)

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        """The state before the first step: (Re x_0, Im x_0) = (0, 0), each ``[B, N]``."""
        zeros = torch.zeros(batch_size, self.hidden_size // 2, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def step(self, u_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """One step of :func:`sequential_scan` on the real view: x_t = λ ⊙ x_{t-1} + γ ⊙ (B u_t)."""
        drive = (u_t @ self.input_map().T).view(u_t.shape[0], -1, 2)
        previous = torch.complex(state[0], state[1])
        new = self.log_lambda().exp() * previous + torch.view_as_complex(drive.contiguous())
        return new.real, new.imag

    def forward(self, x: Tensor, perturbation: Tensor | None = None) -> Tensor:
        batch, steps, _ = x.shape
        n = self.hidden_size // 2
        drive = (x @ self.input_map().T).view(batch, steps, n, 2)
        if perturbation is not None:
            # [Re; Im] blocks -> interleaved pairs: p_re[..., k] + i p_im[..., k] on unit k
            drive = drive + perturbation.reshape(batch, steps, 2, n).transpose(-1, -2)
        path = lru_path(self.requested, x.device.type, steps)
        b = torch.view_as_complex(drive.contiguous())
        log_lam = self.log_lambda()
        states = chunked_scan(b, log_lam) if path == "scan" else sequential_scan(b, log_lam)
        self.impl = path
        # Re(C x) = C_re Re x − C_im Im x, read from the interleaved real view of x
        w_out = torch.stack([self.c_re, -self.c_im], dim=-1).reshape(self.hidden_size, 2 * n)
        y = torch.view_as_real(states).reshape(batch, steps, 2 * n) @ w_out.T
        y = y + (x * self.d if self.residual else x @ self.d.T)
        out = F.glu(self.glu(F.gelu(y)), dim=-1)
        return out + x if self.residual else out


def _check_ring(hidden_size: int, r_min: float, r_max: float, max_phase: float, impl: str) -> None:
    if hidden_size % 2:
        raise ConfigError(
            f"model.hidden_size: the LRU needs an even hidden_size (its state is the real view "
            f"[Re; Im] of hidden_size / 2 complex units), got {hidden_size}"
        )
    if not 0.0 <= r_min <= r_max <= 1.0 or r_min >= 1.0:
        raise ConfigError(
            f"archs.lru: need 0 <= r_min <= r_max <= 1 and r_min < 1 (the ring of |λ|), "
            f"got r_min = {r_min}, r_max = {r_max}"
        )
    if not max_phase > 0.0:
        raise ConfigError(f"archs.lru.max_phase: must be > 0, got {max_phase}")
    if impl not in ("auto", "scan", "sequential"):
        raise ConfigError(f"archs.lru.impl: expected auto, scan or sequential, got {impl!r}")


def ring_init(n: int, r_min: float, r_max: float, max_phase: float) -> tuple[Tensor, ...]:
    """(ν_log, θ_log, γ_log) for ``n`` eigenvalues uniform on the ring (App. A), computed in
    float64 so that |λ| close to 1 keeps its distance from 1."""
    u1 = torch.rand(n, dtype=torch.float64)
    u2 = torch.rand(n, dtype=torch.float64).clamp_min(1e-12)  # a zero would make θ_log −inf
    modulus_sq = u1 * (r_max**2 - r_min**2) + r_min**2  # |λ|², uniform by area on the ring
    modulus_sq = modulus_sq.clamp_min(1e-300)  # r_min = 0 and u1 = 0: |λ| = 0 is exp(−inf)
    nu_log = torch.log(-0.5 * torch.log(modulus_sq))  # exp(−exp(ν)) = |λ|
    theta_log = torch.log(max_phase * u2)
    gamma_log = 0.5 * torch.log1p(-modulus_sq)  # log sqrt(1 − |λ|²)
    return nu_log.float(), theta_log.float(), gamma_log.float()


def sequential_scan(drive: Tensor, log_lam: Tensor) -> Tensor:
    """x_t = λ x_{t-1} + b_t from x_0 = 0, one step at a time: ``[B, T, N]`` complex."""
    lam = log_lam.exp()
    state = torch.zeros_like(drive[:, 0])
    states = []
    for b_t in drive.unbind(1):  # unbind, never drive[:, t]: see CellCore
        state = lam * state + b_t
        states.append(state)
    return torch.stack(states, dim=1)


def chunked_scan(drive: Tensor, log_lam: Tensor, chunk: int | None = None) -> Tensor:
    """The same recurrence in chunks of K steps (module docstring): ``[B, T, N]`` complex."""
    batch, steps, n = drive.shape
    k = chunk or max(1, math.isqrt(steps))
    chunks = -(-steps // k)
    if chunks * k != steps:  # zeros at the end change nothing before them
        pad = drive.new_zeros(batch, chunks * k - steps, n)
        drive = torch.cat([drive, pad], dim=1)
    blocks = drive.view(batch, chunks, k, n)
    lags = torch.arange(k, device=drive.device)
    lag = lags[:, None] - lags[None, :]  # i − j
    # λ^{i−j} on and below the diagonal, 0 above: each power from exp, not repeated products
    powers = torch.exp(lag.clamp_min(0)[..., None].to(log_lam.real.dtype) * log_lam)
    toeplitz = torch.where((lag >= 0)[..., None], powers, torch.zeros_like(powers))
    local = torch.einsum("ijn,bcjn->bcin", toeplitz, blocks)  # each chunk from a zero state
    lam_k = torch.exp(k * log_lam)
    carry = torch.zeros_like(local[:, 0, 0])
    carries = [carry]
    for end in local[:, :-1, -1].unbind(1):  # the state entering each next chunk
        carry = lam_k * carry + end
        carries.append(carry)
    entering = torch.stack(carries, dim=1)  # [B, C, N]
    decay = torch.exp((lags + 1).to(log_lam.real.dtype)[:, None] * log_lam)  # λ^{i+1}, [K, N]
    states = local + decay * entering[:, :, None]
    return states.reshape(batch, chunks * k, n)[:, :steps]
