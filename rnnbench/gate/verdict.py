"""A comparison's result: one row per (group, metric) with its mark, the verdict, the table.

====  ==========================================================================================
mark  meaning
====  ==========================================================================================
``+`` significantly worse (one-sided exact test p < alpha **and** at least the metric's minimum
      effect) - a regression
``!`` newly failing: a run errored, or the group diverges significantly more often than the
      baseline, which never diverged - a regression
``-`` significantly better
``~`` changed, but not beyond noise (p >= alpha or effect below the minimum)
(``` ``) unchanged: the same per-seed values
====  ==========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rnnbench.gate.baseline import finite_or_none

MARKS = {
    "+": "significantly worse",
    "!": "newly failing (error, or diverging where the baseline never diverged)",
    "-": "significantly better",
    "~": "changed, within noise",
    " ": "unchanged",
}
REGRESSION_MARKS = ("+", "!")


@dataclass(frozen=True)
class Row:
    """One (group, metric) line of a comparison."""

    group: str
    metric: str
    baseline: str
    current: str
    ratio: float | None
    p_value: float | None
    mark: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "ratio": finite_or_none(self.ratio) if self.ratio is not None else None,
            "p_value": self.p_value,
            "mark": self.mark.strip(),
            "note": self.note,
        }


@dataclass
class Comparison:
    rows: list[Row]
    alpha: float
    exact: bool
    correction: str
    baseline_info: str
    current_info: str
    environment_differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: statistical checks, and those whose seeds cannot reach alpha after the correction
    checked: int = 0
    blind: int = 0

    @property
    def regressions(self) -> list[Row]:
        return [row for row in self.rows if row.mark in REGRESSION_MARKS]

    @property
    def ok(self) -> bool:
        return not self.regressions

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def verdict(self) -> str:
        count = {mark: sum(row.mark == mark for row in self.rows) for mark in MARKS}
        checks = len(self.rows)
        if self.regressions:
            parts = [f"{count[m]} x '{m}'" for m in REGRESSION_MARKS if count[m]]
            return (
                f"REGRESSION: {len(self.regressions)} of {checks} checks worse "
                f"({', '.join(parts)}) at {self._level()}{self._blind()}"
            )
        return (
            f"OK: no stability regression in {checks} checks ({count['~']} changed within noise, "
            f"{count['-']} significantly better) at {self._level()}{self._blind()}"
        )

    def _blind(self) -> str:
        if not self.blind:
            return ""
        return f"; {self.blind} of {self.checked} checks cannot reach alpha with these seeds"

    def _level(self) -> str:
        family = ", Holm-corrected over all checks" if self.correction == "holm" else ""
        return f"alpha={self.alpha:g}{family}"

    def table(self, only_changed: bool = False) -> str:
        rows = [r for r in self.rows if r.mark != " "] if only_changed else self.rows
        lines = [f"baseline: {self.baseline_info}", f"current:  {self.current_info}"]
        if self.environment_differences:
            lines.append(
                "environment differs (flagged, not a regression): "
                + "; ".join(self.environment_differences)
            )
        else:
            lines.append("environment: same as the baseline")
        header = f"{'':2}{'baseline':>12} {'current':>12} {'ratio':>7} {'p':>7}  group · metric"
        lines += ["", header]
        for row in rows:
            ratio = "" if row.ratio is None else f"{row.ratio:7.3g}"
            p_value = "" if row.p_value is None else f"{row.p_value:7.3f}"
            lines.append(
                f"{row.mark:2}{row.baseline:>12} {row.current:>12} {ratio:>7} {p_value:>7}  "
                f"{row.group} · {row.metric}" + (f"  ({row.note})" if row.note else "")
            )
        if only_changed and len(rows) < len(self.rows):
            lines.append(f"  ({len(self.rows) - len(rows)} unchanged rows not shown)")
        lines += [""] + [
            note if note.startswith("warning: ") else f"note: {note}" for note in self.notes
        ] + [self.verdict()]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": "regression" if self.regressions else "ok",
            "summary": self.verdict(),
            "exit_code": self.exit_code,
            "alpha": self.alpha,
            "exact": self.exact,
            "correction": self.correction,
            "baseline": self.baseline_info,
            "current": self.current_info,
            "environment_differences": self.environment_differences,
            "notes": self.notes,
            "blind_checks": self.blind,
            "marks": {mark.strip() or "": meaning for mark, meaning in MARKS.items()},
            "rows": [row.to_json() for row in self.rows],
        }
