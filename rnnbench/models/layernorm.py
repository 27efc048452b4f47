"""Layer-normalised LSTM and GRU cells (``lstm_ln``, ``gru_ln``): Ba, Kiros & Hinton 2016,
"Layer Normalization" (arXiv:1607.06450), sec. 3.1 and their LN-LSTM equations.

Layer normalisation of a pre-activation vector a (its own mean and deviation, per example and
step): LN(a; α, β) = α ⊙ (a − μ(a)) / sqrt(σ²(a) + ε) + β. Recurrent nets use it on the
summed inputs of every step, separately for the input and the recurrent contributions, so the
recurrent pre-activation's scale no longer grows or shrinks with ||h_{t-1}||.

LN-LSTM (the paper's equations; gate blocks in torch's order i, f, g, o, not the paper's
f, i, o, g, so the weights lay out like ``nn.LSTM``'s):

    (i, f, g, o) = LN(W_ih x_t; α_x, β_x) + LN(W_hh h_{t-1}; α_h)
    c_t = σ(f) ⊙ c_{t-1} + σ(i) ⊙ tanh(g)
    h_t = σ(o) ⊙ tanh(LN(c_t; α_c, β_c))

LN-GRU (``nn.GRU``'s equations and gate order r, z, n, each of its two pre-activations
normalised):

    (r_x, z_x, n_x) = LN(W_ih x_t; α_x, β_x),  (r_h, z_h, n_h) = LN(W_hh h_{t-1}; α_h, β_h)
    r = σ(r_x + r_h),  z = σ(z_x + z_h),  n = tanh(n_x + r ⊙ n_h)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

LN acts on the whole 4H (3H) pre-activation vector, as the paper writes it, not per gate
block. The separate bias b of the paper is the LN shift β_x (β_x + β_h + b would be one
parameter three times); the GRU keeps β_h, which plays b_hn's part inside r ⊙ (…). Gains start
at 1 and shifts at 0 (the paper's initialisation); W_ih and W_hh at U(−1/sqrt(H), 1/sqrt(H)),
torch's. ``weight_hh`` (gate blocks stacked on dim 0, each H×H) is what ``model.init`` and
``init_gain`` act on; ``model.init = "identity"`` zeroes the ``bias_*`` shifts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnbench.models.architectures import register_cell


def _uniform(rows: int, cols: int, hidden_size: int) -> nn.Parameter:
    bound = 1.0 / math.sqrt(hidden_size)
    return nn.Parameter(torch.empty(rows, cols).uniform_(-bound, bound))


class _LayerNormCell(nn.Module):
    """The parameters both cells share: W_ih, W_hh (``gates`` blocks), their LN gains, β_x."""

    gates: int

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        width = self.gates * hidden_size
        self.hidden_size = hidden_size
        self.weight_ih = _uniform(width, input_size, hidden_size)
        self.weight_hh = _uniform(width, hidden_size, hidden_size)
        self.gain_ih = nn.Parameter(torch.ones(width))
        self.bias_ih = nn.Parameter(torch.zeros(width))
        self.gain_hh = nn.Parameter(torch.ones(width))

    def _zeros(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def _from_input(self, x_t: Tensor) -> Tensor:
        width = self.gain_ih.shape
        return F.layer_norm(x_t @ self.weight_ih.T, width, self.gain_ih, self.bias_ih)


@register_cell("lstm_ln", "layer-normalised LSTM (Ba, Kiros & Hinton 2016)", builtin=True)
class LayerNormLSTMCell(_LayerNormCell):
    """LN-LSTM cell; state (h, c)."""

    gates = 4

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.gain_c = nn.Parameter(torch.ones(hidden_size))
        self.bias_c = nn.Parameter(torch.zeros(hidden_size))

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor, Tensor]:
        return self._zeros(batch_size, device, dtype), self._zeros(batch_size, device, dtype)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        h, c = state
        recurrent = F.layer_norm(h @ self.weight_hh.T, self.gain_hh.shape, self.gain_hh)
        gates = self._from_input(x_t) + recurrent
        # σ on the i, f, o blocks only, not one σ over all four: every sigmoid the step computes
        # is then a gate, which the saturation diagnostic counts. The same function; on a CPU a
        # strided block's tail is rounded by the scalar kernel, so where H is not a multiple
        # of 32 (AVX-512) a gate can differ by an ulp from the one-σ version's
        size = self.hidden_size
        i, f = torch.sigmoid(gates[:, : 2 * size]).chunk(2, dim=1)
        o = torch.sigmoid(gates[:, 3 * size :])
        g = torch.tanh(gates[:, 2 * size : 3 * size])
        c = torch.addcmul(f * c, i, g)
        normed_c = F.layer_norm(c, self.gain_c.shape, self.gain_c, self.bias_c)
        return o * torch.tanh(normed_c), c


@register_cell("gru_ln", "layer-normalised GRU (Ba, Kiros & Hinton 2016)", builtin=True)
class LayerNormGRUCell(_LayerNormCell):
    """LN-GRU cell; state (h,)."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.bias_hh = nn.Parameter(torch.zeros(3 * hidden_size))

    def init_state(
        self, batch_size: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Tensor]:
        return (self._zeros(batch_size, device, dtype),)

    def forward(self, x_t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor]:
        (h,) = state
        size = self.hidden_size
        from_x = self._from_input(x_t)
        from_h = F.layer_norm(h @ self.weight_hh.T, self.gain_hh.shape, self.gain_hh, self.bias_hh)
        r_z = torch.sigmoid(from_x[:, : 2 * size] + from_h[:, : 2 * size])
        r, z = r_z.chunk(2, dim=1)
        n = torch.tanh(torch.addcmul(from_x[:, 2 * size :], r, from_h[:, 2 * size :]))
        return (torch.lerp(n, h, z),)
