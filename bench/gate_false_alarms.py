"""False-alarm rate and power of the stability gate (`rnnbench compare`).

On one machine an unchanged re-run is bit-identical, so the gate cannot false-alarm there; the
question is what happens where trajectories differ (another CPU, thread count or torch build).
This measures that worst case with *independent seeds*: the sweep is run with ``blocks`` disjoint
seed blocks, each block in turn is the baseline, and every other block is compared with it
(unchanged code, fresh randomness).  A failing comparison is a false alarm.

    python bench/gate_false_alarms.py tasks/regression.toml --blocks 8 --store fa.db

prints the rate and, per metric, how often each mark appeared.  The store is resumable.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from pathlib import Path

from rnnbench.execution.runner import run_sweep
from rnnbench.gate.calibrate import false_alarms
from rnnbench.results.store import Store
from rnnbench.sweep import load_sweep


def reseeded(text: str, seeds: Sequence[int]) -> str:
    """The sweep file's text with its ``seed = [...]`` grid line replaced."""
    line = f"seed = [{', '.join(map(str, seeds))}]"
    new, count = re.subn(r"(?m)^seed\s*=\s*\[[^\]]*\]", line, text)
    if count != 1:
        raise ValueError("the sweep file needs exactly one `seed = [...]` line in [grid]")
    return new


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--blocks", type=int, default=8, help="independent seed blocks")
    parser.add_argument("--store", type=Path, default=Path("gate_false_alarms.db"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--correction", choices=["holm", "none"], default="holm")
    args = parser.parse_args(argv)

    text = args.sweep.read_text()
    size = len({run.seed for run in load_sweep(args.sweep).runs})
    expanded = args.store.with_suffix(".toml")
    expanded.write_text(reseeded(text, range(size * args.blocks)))
    sweep = load_sweep(expanded)
    summary = run_sweep(sweep, args.store, workers=args.workers)
    print(summary.line())
    wanted = {run.run_id for run in sweep.runs}
    with Store(args.store, readonly=True) as store:
        records = [r for r in store.runs() if r["run_id"] in wanted]
    failing, pairs, marks = false_alarms(
        records, size, args.blocks, alpha=args.alpha, correction=args.correction
    )
    print(
        f"false alarms: {failing}/{pairs} = {failing / pairs:.3f} "
        f"({args.blocks} blocks of {size} seeds, alpha={args.alpha}, correction={args.correction})"
    )
    for (metric, mark), count in sorted(marks.items()):
        print(f"  {mark!r} {metric}: {count}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
