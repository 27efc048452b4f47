"""Optimizers and gradient clipping: the :data:`OPTIMIZERS` and :data:`CLIPPERS` registries.

Clipping sits between backward and the optimizer step; clipping before backward (as the
reference code of Bai, Kolter & Koltun 2018 does for its copy-memory LSTM) clips nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from rnnbench.config.schema import TrainSettings
from rnnbench.registry import Registry

OptimizerFactory = Callable[[Iterable[nn.Parameter], TrainSettings], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
OPTIMIZERS.add("adam", lambda p, s: torch.optim.Adam(p, lr=s.lr, weight_decay=s.weight_decay))
OPTIMIZERS.add(
    "rmsprop",
    lambda p, s: torch.optim.RMSprop(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
)
OPTIMIZERS.add(
    "sgd",
    lambda p, s: torch.optim.SGD(p, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay),
)

#: clip(params, threshold, total_norm) clips the params' .grad in place and returns a 0-d bool
#: tensor: was anything clipped? (torch's clip functions take the *parameters*, not the grads:
#: handing them gradient tensors, whose own .grad is None, silently clips nothing.)
Clipper = Callable[[list[nn.Parameter], float, Tensor], Tensor]


def _clip_none(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    return torch.zeros((), dtype=torch.bool, device=total_norm.device)


def _clip_norm(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    # Pascanu, Mikolov & Bengio 2013, Alg. 1 ("rescale"): g <- g * threshold / ||g||; reuses the
    # norm already computed for the record instead of computing it a second time.
    torch.nn.utils.clip_grads_with_norm_(params, threshold, total_norm)
    return total_norm > threshold


def _clip_value(params: list[nn.Parameter], threshold: float, total_norm: Tensor) -> Tensor:
    largest = torch.stack([p.grad.abs().max() for p in params if p.grad is not None]).max()
    torch.nn.utils.clip_grad_value_(params, threshold)
    return largest > threshold


CLIPPERS: Registry[Clipper] = Registry("clip")
CLIPPERS.add("none", _clip_none)
CLIPPERS.add("norm", _clip_norm)
CLIPPERS.add("value", _clip_value)
