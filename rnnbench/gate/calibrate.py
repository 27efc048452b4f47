"""Calibrating a gate sweep: how often does unchanged code, with fresh seeds, raise an alarm
(:func:`false_alarms`), and how often does a planted regression raise one (:func:`detections`)?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rnnbench.gate.baseline import Baseline
from rnnbench.gate.compare import compare


def false_alarms(
    records: list[Mapping[str, Any]], block_size: int, blocks: int, **compare_kwargs: Any
) -> tuple[int, int, Counter[tuple[str, str]]]:
    """Calibrate a gate sweep: run it with ``blocks`` disjoint blocks of ``block_size`` seeds
    (seeds 0..block_size*blocks-1), pass the records here, and every block is compared with
    every other as if it were the baseline - unchanged code, fresh randomness.

    Returns (failing comparisons, comparisons, Counter of (metric, mark) over all rows).
    """
    by_block = _blocks(records, block_size, blocks)
    failing, pairs = 0, 0
    marks: Counter[tuple[str, str]] = Counter()
    for b, base_runs in enumerate(by_block):
        baseline = Baseline.from_records(base_runs)
        for c, current in enumerate(by_block):
            if c == b:
                continue
            result = compare(baseline, current, **compare_kwargs)
            failing += not result.ok
            pairs += 1
            marks.update((row.metric, row.mark) for row in result.rows if row.mark != " ")
    return failing, pairs, marks


def _blocks(records: list[Mapping[str, Any]], block_size: int, blocks: int) -> list[list[Any]]:
    return [
        [r for r in records if b * block_size <= r["seed"] < (b + 1) * block_size]
        for b in range(blocks)
    ]


def detections(
    unchanged: list[Mapping[str, Any]],
    planted: list[Mapping[str, Any]],
    block_size: int,
    blocks: int,
    **compare_kwargs: Any,
) -> tuple[int, int]:
    """The power of a gate sweep against one planted regression: each block of the unchanged
    runs is a baseline, compared with every other block of the planted runs (a regression
    seen with fresh seeds). Returns (comparisons that failed, comparisons)."""
    base_blocks = _blocks(unchanged, block_size, blocks)
    planted_blocks = _blocks(planted, block_size, blocks)
    detected, pairs = 0, 0
    for b, base_runs in enumerate(base_blocks):
        baseline = Baseline.from_records(base_runs)
        for c, current in enumerate(planted_blocks):
            if c != b:
                detected += not compare(baseline, current, **compare_kwargs).ok
                pairs += 1
    return detected, pairs
