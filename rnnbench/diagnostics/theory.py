"""The theory check: the arithmetic of vanishing and exploding gradients, computed.

Backpropagation multiplies one Jacobian factor per step (or layer), so the gradient reaching n
steps back scales as r^n: below 1 it vanishes, above 1 it explodes (Hochreiter 1991; Bengio,
Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013). The check computes the products the
literature's arguments rest on, then feeds the geometric profile r^n back through the suite's
own profile summary (:func:`~rnnbench.diagnostics.summary.summarize_profile`), which must
recover r. It also measures a deep sigmoid stack with torch autograd: at weight scale 1 the
gradient vanishes towards the input (the logistic derivative is at most 1/4; Glorot & Bengio
2010), at scale 6 it explodes (the factor ||W|| sigma' exceeds 1; Pascanu et al. 2013).

Each row's verdict says whether the computed value bears out the claim: ``agrees``, or what was
found instead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnbench.diagnostics.summary import summarize_profile


@dataclass(frozen=True)
class Claim:
    """What a paper says a product of per-step factors does, and whether that is to vanish
    (``expected="vanishes"``) or to explode."""

    factor: float
    steps: int
    expected: str  # "vanishes" or "explodes"
    claim: str
    source: str


PRODUCTS: tuple[Claim, ...] = (
    Claim(
        0.25,
        10,
        "vanishes",
        "the sigmoid's derivative bound 1/4 over 10 layers",
        "Hochreiter 1991; Glorot & Bengio 2010",
    ),
    Claim(
        0.2,
        19,
        "vanishes",
        "a factor below 1 over 19 steps (exponential decay)",
        "Bengio, Simard & Frasconi 1994",
    ),
    Claim(
        2.5,
        19,
        "explodes",
        "a factor above 1 over 19 steps (exponential growth)",
        "Pascanu, Mikolov & Bengio 2013",
    ),
    Claim(
        1.1,
        100,
        "explodes",
        "a factor slightly above 1 over a long sequence",
        "Pascanu, Mikolov & Bengio 2013",
    ),
)
#: The profile summary must recover the factor within this relative difference.
RECOVERED_WITHIN = 0.05

SIGMOID_LAYERS = 50
SIGMOID_DIM = 32
#: weight scale -> what the gradient through the stack does, and the paper that says so
SIGMOID_SCALES: dict[float, tuple[str, str]] = {
    1.0: ("vanishes", "Glorot & Bengio 2010"),
    6.0: ("explodes", "Pascanu, Mikolov & Bengio 2013"),
}
COLUMNS = ["quantity", "value", "claim", "source", "verdict", "detail"]


@dataclass(frozen=True)
class TheoryCheck:
    """The check's table (one row per quantity, :data:`COLUMNS`) and the measured sigmoid
    stacks (weight scale -> ||dL/dh_l|| per layer), which a report plots."""

    table: pd.DataFrame
    stacks: dict[float, tuple[float, ...]]
    layers: int = SIGMOID_LAYERS
    dim: int = SIGMOID_DIM


@functools.lru_cache(maxsize=4)
def sigmoid_stack_norms(
    scale: float,
    layers: int = SIGMOID_LAYERS,
    dim: int = SIGMOID_DIM,
    seed: int = 0,
    batch: int = 64,
) -> tuple[float, ...]:
    """‖∂L/∂h_l‖ for every layer l = 0..layers-1 of a bias-free sigmoid stack
    h_{l+1} = σ(W_l h_l) − ½, W_l ~ N(0, 1)·scale/√dim, L = Σ h_L (batch-summed).

    Measured by torch autograd in float64 with a private seeded generator (no global RNG)."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    hidden: list[torch.Tensor] = []
    for _ in range(layers):
        weight = torch.randn(dim, dim, generator=gen, dtype=torch.float64) * scale / math.sqrt(dim)
        h = h.detach().requires_grad_(True) if not hidden and not h.requires_grad else h
        hidden.append(h)
        # centred (σ − ½): same derivative σ′ ≤ ¼, but zero-mean activations, so a large
        # scale amplifies (‖W‖·σ′ > 1) instead of saturating every unit
        h = torch.sigmoid(h @ weight.T) - 0.5
    for tensor in hidden:
        tensor.retain_grad()
    h.sum().backward()
    return tuple(float(t.grad.norm()) if t.grad is not None else 0.0 for t in hidden)


def _direction(value: float) -> str:
    return "vanishes" if value < 1 else "explodes"


def product_row(claim: Claim) -> dict[str, Any]:
    """One row of the check: the product r^n, and whether the profile summary recovers r from
    the geometric profile r^n and the product does what the paper says."""
    value = math.prod([claim.factor] * claim.steps)
    # the profile of a loss at the last step: ||dL/dh_t|| = factor^(steps back)
    profile = np.array([claim.factor ** (claim.steps - t) for t in range(claim.steps + 1)])
    recovered = summarize_profile(profile, (0, len(profile))).factor
    found = _direction(value)
    ok = abs(recovered / claim.factor - 1) <= RECOVERED_WITHIN and found == claim.expected
    return {
        "quantity": f"{claim.factor:g}^{claim.steps}",
        "value": value,
        "claim": f"{claim.claim}: {claim.expected}",
        "source": claim.source,
        "verdict": "agrees" if ok else f"disagrees: {found}, profile fit r = {recovered:.3g}",
        "detail": f"r^n = {value:.3g}; the profile summary recovers r = {recovered:.4g}",
    }


def _stack_rows(scale: float, norms: np.ndarray) -> list[dict[str, Any]]:
    summary = summarize_profile(norms, (0, len(norms)))
    found = _direction(summary.factor)
    expected, source = SIGMOID_SCALES[scale]
    base = f"{SIGMOID_LAYERS}-layer sigmoid stack, dim {SIGMOID_DIM}, scale {scale:g}"
    name = f"sigmoid scale {scale:g}"
    return [
        {
            "quantity": f"{name}: per-layer factor r",
            "value": summary.factor,
            "claim": f"r {'<' if expected == 'vanishes' else '>'} 1 ({expected})",
            "source": source,
            "verdict": "agrees" if found == expected else f"disagrees: it {found}",
            "detail": f"{base}: measured r = exp(slope of log‖∂L/∂h_l‖) → {found}",
        },
        {
            "quantity": f"{name}: first/last layer norm ratio",
            "value": norms[0] / norms[-1] if norms[-1] > 0 else math.nan,
            "claim": "",
            "source": "",
            "verdict": "",
            "detail": f"{base}: ‖∂L/∂h_0‖ / ‖∂L/∂h_{SIGMOID_LAYERS - 1}‖",
        },
        {
            "quantity": f"{name}: gradient span (layers)",
            "value": float(summary.span),
            "claim": "",
            "source": "",
            "verdict": "",
            "detail": f"{base}: layers back the norm stays ≥ 1e-6 × its maximum",
        },
    ]


def run_theory_check() -> TheoryCheck:
    """Compute every row of the check (a few milliseconds; the stacks are cached)."""
    rows = [product_row(claim) for claim in PRODUCTS]
    stacks = {scale: sigmoid_stack_norms(scale) for scale in SIGMOID_SCALES}
    for scale, norms in stacks.items():
        rows += _stack_rows(scale, np.asarray(norms, dtype=np.float64))
    return TheoryCheck(pd.DataFrame(rows, columns=COLUMNS), stacks)


def theory_check() -> pd.DataFrame:
    """The check's table: quantity, value, claim, source, verdict, detail."""
    return run_theory_check().table


def theory_text() -> str:
    """The theory check as plain text, one line per quantity."""
    frame = theory_check()
    lines = ["Theory check (computed, not quoted):"]
    for r in frame.itertuples():
        claim = f"  ({r.claim} [{r.source}]: {r.verdict})" if r.claim else ""
        lines.append(f"  {r.quantity} = {r.value:.4g}{claim}  - {r.detail}")
    return "\n".join(lines)
