"""Power and false-alarm rate of the stability gate (`rnnbench compare`), side by side.

On one machine an unchanged re-run is bit-identical, so the gate cannot false-alarm there; the
question is what happens where trajectories differ (another CPU, thread count or torch build).
Both rates are measured with *independent seeds*: the sweep runs with ``blocks`` disjoint seed
blocks of its own size, each block in turn is the baseline, and every other block is compared
with it.

* **False alarms**: unchanged code against unchanged code. A failing comparison is a false
  alarm; the rate is printed with its one-sided 95% Clopper-Pearson upper bound (0 of 56 bounds
  it at 5.2%, not at 0).
* **Power**: unchanged baselines against planted regressions of known size - norm clipping
  removed (a code change: clipping clips nothing), the recurrent init gain x1.2 and x1.5, the
  learning rate x3 (configuration changes, compared with ``allow_config_change``). A failing
  comparison is a detection.

    python bench/gate_power.py tasks/regression.toml --blocks 4 --store-dir gate_power/

Each variant's runs go to their own store in ``--store-dir`` (resumable).
"""

from __future__ import annotations

import argparse
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnbench.execution.runner import run_sweep
from rnnbench.gate.calibrate import detections, false_alarms
from rnnbench.gate.stats import binomial_upper
from rnnbench.results.store import Store
from rnnbench.sweep import load_sweep

#: The planted code change: norm clipping silently does nothing (imported by the workers).
CLIP_REMOVED = """
from rnnbench.training.optim import CLIPPERS, _clip_none
CLIPPERS.remove("norm")
CLIPPERS.add("norm", _clip_none)
"""


@dataclass(frozen=True)
class Plant:
    name: str
    edit: Callable[[str], str]  # the sweep file's text -> the planted variant's
    config_change: bool


def _scaled(key: str, factor: float, default: float) -> Callable[[str], str]:
    def edit(text: str) -> str:
        section = "model" if key == "init_gain" else "train"
        value = tomllib.loads(text).get(section, {}).get(key, default) * factor
        pattern = rf"(?m)^{key}\s*=.*$"
        if re.search(pattern, text):
            return re.sub(pattern, f"{key} = {value!r}", text)
        return re.sub(rf"(?m)^\[{section}\]$", f"[{section}]\n{key} = {value!r}", text)

    return edit


def _clip_removed(text: str) -> str:
    return re.sub(r'(?m)^name\s*=.*$', 'name = "regression"\nimports = ["planted_clip"]', text)


PLANTS = (
    Plant("norm clipping removed", _clip_removed, config_change=False),
    Plant("recurrent init gain x1.2", _scaled("init_gain", 1.2, 1.0), config_change=True),
    Plant("recurrent init gain x1.5", _scaled("init_gain", 1.5, 1.0), config_change=True),
    Plant("learning rate x3", _scaled("lr", 3.0, 1e-3), config_change=True),
)


def reseeded(text: str, seeds: Sequence[int]) -> str:
    """The sweep file's text with its ``seed = [...]`` grid line replaced."""
    line = f"seed = [{', '.join(map(str, seeds))}]"
    new, count = re.subn(r"(?m)^seed\s*=\s*\[[^\]]*\]", line, text)
    if count != 1:
        raise ValueError("the sweep file needs exactly one `seed = [...]` line in [grid]")
    return new


def records_of(text: str, folder: Path, name: str, workers: int | None) -> list[dict]:
    """Run a sweep file's text (written to ``folder/name.toml``) into ``folder/name.db``."""
    sweep_file = folder / f"{name}.toml"
    sweep_file.write_text(text)
    sweep = load_sweep(sweep_file)
    store = folder / f"{name}.db"
    print(f"{name}: {run_sweep(sweep, store, workers=workers).line()}", flush=True)
    wanted = {run.run_id for run in sweep.runs}
    with Store(store, readonly=True) as db:
        return [r for r in db.runs() if r["run_id"] in wanted]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path)
    parser.add_argument("--blocks", type=int, default=4, help="independent seed blocks")
    parser.add_argument("--store-dir", type=Path, default=Path("gate_power"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--no-power", action="store_true", help="false alarms only")
    args = parser.parse_args(argv)

    args.store_dir.mkdir(parents=True, exist_ok=True)
    (args.store_dir / "planted_clip.py").write_text(CLIP_REMOVED)
    size = len({run.seed for run in load_sweep(args.sweep).runs})
    text = reseeded(args.sweep.read_text(), range(size * args.blocks))
    unchanged = records_of(text, args.store_dir, "unchanged", args.workers)
    failing, pairs, _ = false_alarms(unchanged, size, args.blocks, alpha=args.alpha)
    rows = [("false alarms (unchanged)", failing, pairs)]
    for plant in () if args.no_power else PLANTS:
        planted = records_of(plant.edit(text), args.store_dir, _slug(plant.name), args.workers)
        found, pairs = detections(
            unchanged,
            planted,
            size,
            args.blocks,
            alpha=args.alpha,
            allow_config_change=plant.config_change,
        )
        rows.append((f"power: {plant.name}", found, pairs))
    print(f"\n{args.blocks} blocks of {size} seeds, alpha={args.alpha}, Holm-corrected")
    print(f"{'':30}{'comparisons failing':>20}{'rate':>8}{'95% bound':>11}")
    for label, count, total in rows:
        # the bound: the largest false-alarm rate, or the smallest power, that the count allows
        bound = (
            binomial_upper(count, total)
            if label.startswith("false")
            else 1 - binomial_upper(total - count, total)
        )
        print(f"{label:30}{f'{count}/{total}':>20}{count / total:>8.3f}{bound:>11.3f}")
    return 0


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


if __name__ == "__main__":
    raise SystemExit(main())
