"""Initialisation of the recurrent weights: the :data:`INITS` registry."""

from __future__ import annotations

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


INITS: Registry[Callable[[Tensor, int, float, torch.Generator], None]] = Registry("init")
INITS.add("default", _init_default)
INITS.add("orthogonal", _init_orthogonal)
INITS.add("identity", _init_identity)
