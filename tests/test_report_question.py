"""The question-first tables: per task and clip mode, solved / loss / gradient span / r / λ_1 per
architecture and T with the clip mode's Δ from no clipping; and the comparison of every
architecture of a label with every architecture of the baseline store."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from rnnbench.report.comparison import comparison_numbers, comparison_views
from rnnbench.report.question import question_numbers, question_views
from rnnbench.report.tables import DASH, delta


def _run(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "label": "base",
        "task": "adding",
        "arch": "rnn",
        "seq_len": 10,
        "clip": "none",
        "seed": 0,
        "status": "ok",
        "solved": True,
        "normalized_loss": 0.1,
        "grad_span": 10,
        "grad_factor": 0.9,
        "lyapunov_max": -0.1,
        "task_memory_span": 5,
    }
    return base | values


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["solved"] = frame["solved"].astype(object)
    return frame


def _sweep(label: str = "base", archs: tuple[str, ...] = ("rnn", "gru"), **extra: Any) -> list:
    """Two seeds per (arch, T, clip); the values differ by arch, T, clip and seed, so every Δ
    below is a difference of two distinct medians."""
    rows = []
    for a, arch in enumerate(archs):
        for seq_len in (10, 20):
            for c, clip in enumerate(("none", "norm:1")):
                for seed in (0, 1):
                    rows.append(
                        _run(
                            label=label,
                            arch=arch,
                            seq_len=seq_len,
                            clip=clip,
                            seed=seed,
                            solved=bool((a + c + seed) % 2) or seq_len == 10,
                            normalized_loss=0.1 * (a + 1) + 0.01 * seq_len + 0.05 * c + 0.3 * seed,
                            grad_span=seq_len - a - c - seed,
                            grad_factor=0.5 + 0.1 * a + 0.05 * c + 0.01 * seed,
                            lyapunov_max=-0.5 + 0.1 * a + 0.02 * c - 0.01 * seed,
                            task_memory_span=seq_len // 2 + a - c + seed,
                            **extra,
                        )
                    )
    return rows


def _median(frame: pd.DataFrame, column: str, **where: Any) -> float:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return float(np.median(frame.loc[mask, column].astype(float)))


def test_one_table_per_task_and_clip_with_the_delta_from_no_clipping() -> None:
    frame = _frame(_sweep())
    views = question_views(question_numbers(frame), ["base"])
    assert [caption.split(" (")[0] for caption, _ in views] == [
        "task: adding · clip: none",
        "task: adding · clip: norm:1",
    ]
    (_, none), (_, clipped) = views
    assert not any(str(c).startswith("Δ") for c in none.columns)
    assert list(none.index.names) == ["arch", "T"]
    assert len(clipped.columns) <= 10  # split rather than widen
    for arch in ("rnn", "gru"):
        for seq_len in (10, 20):
            at = {"arch": arch, "seq_len": seq_len}
            for column, title in (
                ("grad_span", "Δ gradient span"),
                ("grad_factor", "Δ r at end"),
                ("lyapunov_max", "Δ λ_1 at end"),
            ):
                want = _median(frame, column, clip="norm:1", **at) - _median(
                    frame, column, clip="none", **at
                )
                assert float(clipped.loc[(arch, seq_len), title]) == pytest.approx(
                    want, abs=5e-3
                ), (arch, seq_len, title)
            solved = frame[(frame["arch"] == arch) & (frame["seq_len"] == seq_len)]
            rate = {
                c: solved.loc[solved["clip"] == c, "solved"].eq(True).mean()
                for c in ("none", "norm:1")
            }
            diff = rate["norm:1"] - rate["none"]
            want_rate = "0" if diff == 0 else f"{diff:+.2f}"
            assert clipped.loc[(arch, seq_len), "Δ solved rate"] == want_rate
            k = int(solved.loc[solved["clip"] == "norm:1", "solved"].eq(True).sum())
            assert clipped.loc[(arch, seq_len), "solved"] == f"{k}/2"


def test_a_difference_is_shown_to_the_precision_of_its_values() -> None:
    # two runs that agree up to float noise: 0, not '+2.46e-09'
    assert delta(0.912345678, 0.912345676) == "0"
    assert delta(0.91, 0.62) == "+0.290"
    assert delta(0.000506, 0.000343) == "+0.000163"
    assert delta(60, 27) == "+33.0" and delta(27.5, 60) == "-32.5"
    assert delta(0.5, 1.0, decimals=2) == "-0.50"
    assert delta(float("nan"), 1.0) == DASH and delta(None, 1.0) == DASH


def test_without_a_run_unclipped_there_is_nothing_to_subtract() -> None:
    frame = _frame([r for r in _sweep() if r["clip"] != "none"])
    ((caption, view),) = question_views(question_numbers(frame), ["base"])
    assert "no run without clipping" in caption
    assert set(view["Δ r at end"]) == {DASH}


def test_lyapunov_column_only_where_recorded() -> None:
    frame = _frame(_sweep()).assign(lyapunov_max=np.nan)
    (_, view), _ = question_views(question_numbers(frame), ["base"])
    assert "λ_1 at end" not in view.columns and "r at end" in view.columns


def test_a_user_cell_is_compared_with_every_baseline_architecture() -> None:
    frame = _frame(_sweep("base", ("rnn", "lstm", "gru")) + _sweep("mine", ("mycell",)))
    numbers = question_numbers(frame)
    compared = comparison_numbers(numbers, ["base", "mine"], [])
    assert sorted(set(compared["against"])) == ["gru", "lstm", "rnn"]
    assert set(compared["arch"]) == {"mycell"}
    views = comparison_views(numbers, compared, ["base", "mine"])
    assert [c.split(" (")[0] for c, _ in views] == [
        f"task: adding · mine against base's {a}" for a in ("gru", "lstm", "rnn")
    ]
    for caption, view in views:
        against = caption.split("base's ")[1].split(" ")[0]
        assert len(view.columns) <= 10
        for (arch, seq_len, clip), row in view.iterrows():
            at = {"seq_len": seq_len, "clip": clip}
            mine = _median(frame, "normalized_loss", label="mine", arch=arch, **at)
            base = _median(frame, "normalized_loss", label="base", arch=against, **at)
            assert float(row["Δ norm. loss"]) == pytest.approx(mine - base, rel=1e-2, abs=1e-3)
            span = _median(frame, "task_memory_span", label="mine", arch=arch, **at) - _median(
                frame, "task_memory_span", label="base", arch=against, **at
            )
            assert float(row["Δ task memory span"]) == pytest.approx(span)


def test_a_same_name_pair_and_an_axis_the_baseline_does_not_sweep() -> None:
    # mine sweeps the learning rate, the baseline holds it (None): each lr matches the baseline
    base = _sweep("base", ("lstm",))
    mine = [r | {"train.lr": lr} for lr in (1e-3, 1e-2) for r in _sweep("mine", ("lstm",))]
    frame = _frame([r | {"train.lr": None} for r in base] + mine)
    numbers = question_numbers(frame)
    compared = comparison_numbers(numbers, ["base", "mine"], ["train.lr"])
    assert len(compared) == 2 * 2 * 2  # lr x T x clip, against the one lstm
    # identical runs: every Δ is zero
    assert np.allclose(compared["delta_norm_loss_median"], 0.0)
    assert np.allclose(compared["delta_solved_rate"], 0.0)
    ((_, view),) = comparison_views(numbers, compared, ["base", "mine"], {"train.lr": "lr"})
    assert list(view.index.names) == ["arch", "lr", "T", "clip"]
    # these runs have no run ids: nothing says they are the same runs
    assert not compared["same_runs"].any()
    assert set(view.index.get_level_values("arch")) == {"lstm"}


def test_rows_of_the_same_runs_are_marked() -> None:
    def with_ids(rows: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
        return [
            r | {"run_id": f"{prefix}{r['arch']}-{r['seq_len']}-{r['clip']}-{r['seed']}"}
            for r in rows
        ]

    base = with_ids(_sweep("base", ("lstm", "gru")))
    # mine: the same lstm runs (the same ids) and a cell of its own
    mine = with_ids(_sweep("mine", ("lstm",))) + with_ids(_sweep("mine", ("mycell",)), "m")
    numbers = question_numbers(_frame(base + mine))
    compared = comparison_numbers(numbers, ["base", "mine"], [])
    same = compared.set_index(["arch", "against"])["same_runs"].groupby(level=[0, 1]).all()
    assert same.to_dict() == {
        ("lstm", "gru"): False,
        ("lstm", "lstm"): True,
        ("mycell", "gru"): False,
        ("mycell", "lstm"): False,
    }
    views = dict(comparison_views(numbers, compared, ["base", "mine"]))
    lstm = next(v for c, v in views.items() if "base's lstm" in c)
    assert set(lstm.index.get_level_values("arch")) == {"lstm (same runs)", "mycell"}


def test_no_comparison_for_one_store() -> None:
    numbers = question_numbers(_frame(_sweep()))
    assert comparison_numbers(numbers, ["base"], []).empty
