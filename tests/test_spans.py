"""Task spans from stored runs, whatever pandas gives the solved column."""

from __future__ import annotations

import warnings

import pandas as pd

from rnnbench.results.spans import task_spans


def test_an_errored_run_counts_as_unsolved_without_a_warning() -> None:
    # An errored run stores solved = NULL, so the column is object-typed (True/False/None).
    # before: fillna(False) on it raised pandas 2.2-2.3's downcasting FutureWarning
    frame = pd.DataFrame(
        {
            "task": ["adding"] * 4,
            "arch": ["rnn"] * 4,
            "clip": ["none"] * 4,
            "seq_len": [5, 5, 10, 10],
            "solved": pd.Series([True, None, False, None], dtype=object),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spans = task_spans(frame)
    assert spans.to_dict("records") == [
        {"task": "adding", "arch": "rnn", "clip": "none", "task_span": 5.0, "first_unsolved": 10.0}
    ]
