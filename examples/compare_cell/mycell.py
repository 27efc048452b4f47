"""A user cell for the worked study in the README: a minimal gated recurrent unit.

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f + forget_bias)
    h_t = f_t * h_{t-1} + (1 - f_t) * tanh(W x_t + U h_{t-1} + b)

One gate coupling "keep" and "write", as in the minimal gated unit (Zhou et al. 2016,
"Minimal Gated Unit for Recurrent Neural Networks"). ``forget_bias`` starts the gate open,
so that early in training the state is carried (the reasoning of Gers, Schmidhuber &
Cummins 2000 for the LSTM's forget-gate bias); it is a constructor parameter, so a sweep sets
it from ``[archs.mgu]`` or sweeps it from ``[grid.archs.mgu]``.
"""

import torch
from torch import nn

import rnnbench


@rnnbench.register_cell("mgu")
class MinimalGatedUnit(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.forget_bias = forget_bias
        self.weight_ih = nn.Linear(input_size, 2 * hidden_size)
        # named weight_hh, gate blocks stacked on dim 0 (gate, candidate), as nn.GRU stacks
        # them: model.init and init_gain act on each block
        bound = hidden_size**-0.5
        self.weight_hh = nn.Parameter(
            torch.empty(2 * hidden_size, hidden_size).uniform_(-bound, bound)
        )

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype):
        return (torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype),)

    def forward(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...]):
        h = state[0]
        gi = self.weight_ih(x_t)
        gh = h @ self.weight_hh.T
        size = self.hidden_size
        f = torch.sigmoid(gi[:, :size] + gh[:, :size] + self.forget_bias)
        candidate = torch.tanh(gi[:, size:] + gh[:, size:])
        return (f * h + (1 - f) * candidate,)
