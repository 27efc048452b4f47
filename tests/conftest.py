"""Shared fixtures: tiny sweeps that run in seconds."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_SWEEP = """
name = "tiny"
[grid]
task = ["copy", "adding"]
arch = ["rnn", "lstm"]
seq_len = [5]
clip = ["none", "norm:0.5"]
seed = [0]
[model]
hidden_size = 8
[train]
steps = 12
batch_size = 8
[diagnostics]
checkpoints = 1
eval_size = 32
profile_batch_size = 8
probe_max_lag = 4
probe_size = 16
curve_points = 5
"""


@pytest.fixture
def write_sweep(tmp_path: Path) -> Callable[..., Path]:
    """Write a sweep file (TINY_SWEEP by default) into tmp_path and return its path."""

    def write(text: str = TINY_SWEEP, name: str = "sweep.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write
