"""Runs compute in IEEE float32: TF32 is off while a run trains or profiles, and the caller's
settings come back afterwards (rnnbench.numerics)."""

from collections.abc import Iterator
from typing import ClassVar

import pytest
import torch
from torch import nn

import rnnbench
from rnnbench.numerics import full_float32
from tests.test_training import run_config

backends = torch.backends


def effective(precision: str) -> str:
    # "none" inherits from torch.backends.fp32_precision, which no test changes: IEEE
    return "ieee" if precision == "none" else precision


def settings() -> dict[str, str]:
    """Every float32-precision switch torch has, as the process sees it now."""
    return {
        "matmul": torch.get_float32_matmul_precision(),
        "cudnn.rnn": effective(backends.cudnn.rnn.fp32_precision),
        "cudnn.conv": effective(backends.cudnn.conv.fp32_precision),
        "cuda.matmul": effective(backends.cuda.matmul.fp32_precision),
        "mkldnn.matmul": effective(backends.mkldnn.matmul.fp32_precision),
    }


@pytest.fixture
def tf32_user() -> Iterator[dict[str, str]]:
    """A caller who asked for TF32 everywhere; the process's own settings are put back."""
    before = settings()
    torch.set_float32_matmul_precision("high")
    backends.cudnn.rnn.fp32_precision = "tf32"
    backends.cudnn.conv.fp32_precision = "tf32"
    try:
        yield settings()
    finally:
        torch.set_float32_matmul_precision(before["matmul"])
        backends.cudnn.rnn.fp32_precision = before["cudnn.rnn"]
        backends.cudnn.conv.fp32_precision = before["cudnn.conv"]
        assert settings() == before


def test_tf32_is_off_inside_and_the_callers_settings_return(tf32_user: dict[str, str]) -> None:
    assert tf32_user["cudnn.rnn"] == "tf32" and tf32_user["matmul"] == "high"
    with full_float32():
        inside = settings()
        # readable: torch raises on reading it when the legacy and new switches disagree
        assert backends.cudnn.allow_tf32 is False
    assert inside == dict.fromkeys(inside, "ieee") | {"matmul": "highest"}
    assert settings() == tf32_user
    assert backends.cudnn.allow_tf32 is True


def test_the_settings_return_when_the_block_raises(tf32_user: dict[str, str]) -> None:
    with pytest.raises(ZeroDivisionError), full_float32():
        _ = 1 / 0
    assert settings() == tf32_user


def test_a_caller_who_mixed_the_legacy_and_new_switches(tf32_user: dict[str, str]) -> None:
    backends.cudnn.rnn.fp32_precision = "ieee"  # conv stays TF32: the legacy flag is unreadable
    mixed = settings()
    with full_float32():
        assert settings()["cudnn.conv"] == "ieee"
    assert settings() == mixed


def test_blocks_nest() -> None:
    before = settings()
    with full_float32():
        with full_float32():
            pass
        assert settings()["cudnn.rnn"] == "ieee"
        assert backends.cudnn.allow_tf32 is False
    assert settings() == before


class PrecisionSpy(nn.Module):
    """An Elman cell that notes the cuDNN RNN and matmul precision each time it runs."""

    seen: ClassVar[set[tuple[str, str]]] = set()

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.inp = nn.Linear(input_size, hidden_size)
        self.rec = nn.Linear(hidden_size, hidden_size, bias=False)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> tuple:
        return (torch.zeros(batch_size, self.rec.in_features, device=device, dtype=dtype),)

    def forward(self, x_t: torch.Tensor, state: tuple) -> tuple:
        PrecisionSpy.seen.add(
            (effective(backends.cudnn.rnn.fp32_precision), torch.get_float32_matmul_precision())
        )
        return (torch.tanh(self.inp(x_t) + self.rec(state[0])),)


rnnbench.register_cell("test_precision_spy")(PrecisionSpy)


def test_a_run_trains_and_profiles_in_ieee_float32(tf32_user: dict[str, str]) -> None:
    from tests.test_training import run_config

    PrecisionSpy.seen.clear()
    record = rnnbench.training.train_run(run_config(arch="test_precision_spy"))
    assert record["status"] == "ok" and record["profiles"]  # trained, evaluated and profiled
    assert PrecisionSpy.seen == {("ieee", "highest")}
    assert settings() == tf32_user

    PrecisionSpy.seen.clear()
    task = rnnbench.make_task("adding", seq_len=6)
    model = rnnbench.make_model("test_precision_spy", task, hidden_size=4, seed=0)
    rnnbench.gradient_norms_through_time(model, task, task.sample(2, torch.Generator()))
    assert PrecisionSpy.seen == {("ieee", "highest")}
    assert settings() == tf32_user


def test_the_flush_to_zero_switch_is_read_off_the_arithmetic() -> None:
    from rnnbench.numerics import denormals_flushed

    previous = denormals_flushed()
    try:
        torch.set_flush_denormal(True)
        assert denormals_flushed()
        torch.set_flush_denormal(False)
        assert not denormals_flushed()
    finally:
        torch.set_flush_denormal(previous)


def test_an_in_process_run_leaves_flush_to_zero_as_the_caller_had_it() -> None:
    # before: train_run switched flush-to-zero on for good, in the caller's process
    from rnnbench.numerics import denormals_flushed

    previous = denormals_flushed()
    torch.set_flush_denormal(False)
    try:
        rnnbench.train_run(run_config())
        assert not denormals_flushed()
    finally:
        torch.set_flush_denormal(previous)
