"""The recurrent initialisations: each gives the variance its paper derives, per gate block."""

from __future__ import annotations

import math

import pytest
import torch

import rnnbench


@pytest.mark.parametrize(
    ("init", "gain", "std"),
    [
        # Glorot & Bengio 2010: U(-a, a), a = sqrt(6 / (fan_in + fan_out)): std a / sqrt(3)
        ("xavier_uniform", 1.0, math.sqrt(6 / 512) / math.sqrt(3)),
        ("xavier_uniform", 0.5, 0.5 * math.sqrt(6 / 512) / math.sqrt(3)),
        # He et al. 2015: N(0, 2 / fan_in)
        ("kaiming_normal", 1.0, math.sqrt(2 / 256)),
    ],
)
@pytest.mark.parametrize("arch", ["rnn", "lstm", "gru"])
def test_an_init_gives_each_gate_block_its_variance(
    arch: str, init: str, gain: float, std: float
) -> None:
    task = rnnbench.make_task("adding", seq_len=5)
    model = rnnbench.make_model(arch, task, hidden_size=256, init=init, init_gain=gain, seed=4)
    weight = model.core.recurrent_weights()[0].detach()
    for block in weight.split(256):
        assert float(block.std()) == pytest.approx(std, rel=0.02)
        assert abs(float(block.mean())) < 0.05 * std
    again = rnnbench.make_model(arch, task, hidden_size=256, init=init, init_gain=gain, seed=4)
    assert torch.equal(weight, again.core.recurrent_weights()[0].detach())  # seeded
