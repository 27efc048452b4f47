"""The theory-check section of a report: its table and the sigmoid-stack figure.

The check itself is computed by :mod:`rnnbench.diagnostics.theory` (it measures with torch);
this module renders any value of the :class:`TheoryData` shape, so the report stays torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rnnbench.report.render import Section, save_figure


class TheoryData(Protocol):
    """A computed theory check (:class:`rnnbench.diagnostics.theory.TheoryCheck`)."""

    @property
    def table(self) -> pd.DataFrame: ...
    @property
    def stacks(self) -> Mapping[float, Sequence[float]]: ...
    @property
    def layers(self) -> int: ...
    @property
    def dim(self) -> int: ...


def _stack_figure(theory: TheoryData) -> tuple[str, Figure, str]:
    fig, ax = plt.subplots(figsize=(6.0, 3.2))
    for (scale, stack), colour in zip(theory.stacks.items(), ("tab:blue", "tab:red"), strict=False):
        norms = np.asarray(stack, dtype=np.float64)
        layers = np.arange(len(norms))
        keep = np.isfinite(norms) & (norms > 0)  # log(0) masked
        ax.plot(layers[keep], norms[keep], color=colour, label=f"weight scale {scale:g}")
    ax.set_yscale("log")
    ax.set_xlabel("layer l (0 = input side)")
    ax.set_ylabel("‖∂L/∂h_l‖")
    ax.set_title(f"{theory.layers}-layer sigmoid stack, dim {theory.dim}", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    scales = sorted(theory.stacks)
    return (
        "theory_sigmoid_stack",
        fig,
        f"Per-layer gradient norm of a {theory.layers}-layer sigmoid stack: scale "
        f"{scales[0]:g} vanishes towards the input, scale {scales[-1]:g} explodes.",
    )


def theory_section(theory: TheoryData, figdir: Path) -> Section:
    s = Section("theory", "Theory check")
    s.para(
        "The arithmetic of vanishing and exploding gradients, computed here: products of "
        "per-step factors r^n (each fed back through the suite's profile summary, which "
        "must recover r), and a deep sigmoid stack measured with torch autograd. 'verdict' "
        "says whether the computed value bears out the cited paper's claim."
    )
    table = theory.table.assign(value=theory.table["value"].map(lambda v: f"{v:.4g}"))
    s.table("", table.set_index("quantity"))
    save_figure(*_stack_figure(theory), figdir, s)
    return s
