"""The progress line of a sweep: runs done, statuses and an ETA weighted by work."""

from __future__ import annotations

import time
from collections import Counter
from typing import TextIO


class Progress:
    """One line on a terminal: runs done / total, statuses and an ETA.

    The ETA weighs runs by their estimated work (:func:`rnnbench.execution.cost.run_flops`), not by
    count: the runs are scheduled longest first, so a count-based ETA would start far too high.
    """

    def __init__(self, total: int, stream: TextIO | None, work: float = 0.0) -> None:
        self.total, self.stream, self.done = total, stream, 0
        self.work, self.work_done = work, 0.0
        # On a terminal one line redrawn in place; in a log file a line per ~10% of the runs.
        self.redraw = bool(stream is not None and stream.isatty())
        self.every = 1 if self.redraw else max(1, total // 10)
        self.started = time.perf_counter()
        self.counts: Counter[str] = Counter()

    def update(self, status: str, work: float = 0.0) -> None:
        self.done += 1
        self.counts[status] += 1
        self.work_done += work
        if self.stream is None or (self.done % self.every and self.done != self.total):
            return
        elapsed = time.perf_counter() - self.started
        if self.work > 0 and self.work_done > 0:
            eta = elapsed / self.work_done * max(self.work - self.work_done, 0.0)
        else:
            eta = elapsed / self.done * (self.total - self.done)
        width = 24
        filled = round(width * self.done / max(self.total, 1))
        counts = " ".join(f"{s} {n}" for s, n in sorted(self.counts.items()))
        self.stream.write(
            f"{chr(13) if self.redraw else ''}[{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {counts} | {elapsed:.0f}s elapsed, ETA {eta:.0f}s "
        )
        if self.done == self.total or not self.redraw:
            self.stream.write("\n")
        self.stream.flush()
