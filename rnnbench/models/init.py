"""Initialisation of the recurrent weights: the :data:`INITS` registry."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from rnnbench.registry import Registry


def _init_default(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """Keep the module's own (seeded) initialisation; ``gain`` scales it."""
    with torch.no_grad():
        weight.mul_(gain)


def _init_orthogonal(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """An orthogonal matrix per gate block: singular values all ``gain`` (Saxe et al. 2014)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            gaussian = torch.randn(block.shape, generator=g, dtype=torch.float64)
            q, r = torch.linalg.qr(gaussian)
            q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # uniform (Haar) distribution
            block.copy_(q.to(block.dtype) * gain)


def _init_identity(weight: Tensor, hidden_size: int, gain: float, g: torch.Generator) -> None:
    """The identity per gate block times ``gain`` (IRNN, Le, Jaitly & Hinton 2015)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            block.copy_(torch.eye(hidden_size, dtype=block.dtype) * gain)


def _init_xavier_uniform(
    weight: Tensor, hidden_size: int, gain: float, g: torch.Generator
) -> None:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) per gate block: the variance that
    keeps activations and gradients of the same scale through a linear layer (Glorot & Bengio
    2010, eq. 16)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            fan_out, fan_in = block.shape
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            block.copy_((torch.rand(block.shape, generator=g) * 2 - 1).to(block.dtype) * bound)


def _init_kaiming_normal(
    weight: Tensor, hidden_size: int, gain: float, g: torch.Generator
) -> None:
    """N(0, 2 / fan_in) per gate block, times ``gain``: the variance that keeps a ReLU layer's
    activations of the same scale (He et al. 2015, eq. 10)."""
    with torch.no_grad():
        for block in weight.split(hidden_size, dim=0):
            std = gain * math.sqrt(2.0 / block.shape[1])
            block.copy_(torch.randn(block.shape, generator=g).to(block.dtype) * std)


INITS: Registry[Callable[[Tensor, int, float, torch.Generator], None]] = Registry("init")
INITS.add("default", _init_default)
INITS.add("orthogonal", _init_orthogonal)
INITS.add("identity", _init_identity)
INITS.add("xavier_uniform", _init_xavier_uniform)
INITS.add("kaiming_normal", _init_kaiming_normal)
