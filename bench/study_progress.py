"""How far a sweep has got in a store, by work: the runs done and their share of the sweep's
FLOPs (rnnbench.execution.cost.run_flops), the training time they took, and the projected whole.

    python bench/study_progress.py tasks/paper.toml paper.db [--elapsed SECONDS]

``--elapsed``: the wall time the calls that filled the store took together; with it the script
projects the whole sweep's wall time as elapsed / (share of the work done). Used to measure the
paper study on a GPU in 10-minute device calls (bench/gpu_session.sh paper), which resume the
same store.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnnbench.execution.cost import run_flops
from rnnbench.results.store import load_results
from rnnbench.sweep import load_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("store", type=Path)
    parser.add_argument("--elapsed", type=float, default=None, help="wall seconds so far")
    args = parser.parse_args()
    sweep = load_sweep(args.sweep)
    costs = {run.run_id: run_flops(run) for run in sweep.runs}
    frame = load_results(args.store)
    frame = frame[frame["run_id"].isin(costs)]
    finished = frame[frame["status"] != "error"]
    share = sum(costs[r] for r in finished["run_id"]) / sum(costs.values())
    statuses = Counter(frame["status"])
    print(
        f"{sweep.name}: {len(finished)} of {len(costs)} runs finished "
        f"({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}), "
        f"{share:.1%} of the sweep's FLOPs; {finished['wall_s'].sum():.0f} s of run time "
        f"({finished['wall_s'].sum() / max(len(finished), 1):.1f} s a run)"
    )
    if args.elapsed is not None and share > 0:
        print(
            f"wall {args.elapsed:.0f} s so far; projected whole sweep: "
            f"{args.elapsed / share / 60:.1f} min at this rate"
        )


if __name__ == "__main__":
    main()
