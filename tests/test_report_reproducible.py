"""Reports that rebuild byte for byte, and one fixed colour per architecture in every report."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

import rnnbench
from rnnbench.report import build_report
from rnnbench.report.style import BUILTIN_COLOURS, USER_COLOURS, palette

SWEEP = """
name = "repro"
[grid]
task = ["copy"]
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


@dataclass
class FixedTheory:
    """A theory check of fixed numbers (the real one measures with torch): the report's theory
    figure without the cost, and without any doubt that its input is the same twice."""

    table: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {"quantity": ["r^n at r=0.9, n=50"], "value": [0.9**50], "verdict": ["ok"]}
        )
    )
    stacks: dict[float, list[float]] = field(
        default_factory=lambda: {0.5: [1e-6, 1e-4, 1e-2, 1.0], 4.0: [1e3, 1e2, 10.0, 1.0]}
    )
    layers: int = 4
    dim: int = 8


def build(store: Path, out: Path) -> Path:
    return build_report([store], out, theory=FixedTheory())


# the second build runs in a fresh interpreter under another hash seed: set and dict orders of
# strings, ids and anything else a process draws anew must not reach the files
_BUILD_ELSEWHERE = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from test_report_reproducible import build
    build(sys.argv[2], sys.argv[3])
    """
)


def _other_hash_seed() -> str:
    return "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repro_store")
    (root / "sweep.toml").write_text(SWEEP)
    rnnbench.run_sweep(root / "sweep.toml", root / "repro.db", workers=0, progress=None)
    return root / "repro.db"


@pytest.fixture(scope="module")
def builds(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    first = tmp_path_factory.mktemp("first") / "out"
    second = tmp_path_factory.mktemp("second") / "out"
    build(store, first)
    env = {**os.environ, "PYTHONHASHSEED": _other_hash_seed()}
    subprocess.run(
        [sys.executable, "-c", _BUILD_ELSEWHERE, str(Path(__file__).parent), str(store), second],
        env=env,
        check=True,
        timeout=600,
    )
    return first, second


def test_every_figure_file_is_byte_identical(builds: tuple[Path, Path]) -> None:
    first, second = (sorted(p.relative_to(b) for p in (b / "figures").iterdir()) for b in builds)
    assert first == second
    assert len(first) >= 3 * 7
    for name in first:
        a, b = ((out / name).read_bytes() for out in builds)
        assert a == b, f"{name} differs between two builds of one store"


def test_every_figure_is_written_as_png_svg_and_pdf(builds: tuple[Path, Path]) -> None:
    figures = builds[0] / "figures"
    pngs = {p.stem for p in figures.glob("*.png")}
    assert "theory_sigmoid_stack" in pngs
    assert {p.stem for p in figures.glob("*.svg")} == pngs
    assert {p.stem for p in figures.glob("*.pdf")} == pngs
    for stem in pngs:
        assert (figures / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"


def test_figure_files_carry_no_dates_or_versions(builds: tuple[Path, Path]) -> None:
    figures = builds[0] / "figures"
    for path in figures.iterdir():
        data = path.read_bytes()
        assert matplotlib.__version__.encode() not in data, path.name
        assert b"CreationDate" not in data and b"<dc:date>" not in data, path.name


def _differing_lines(a: Path, b: Path) -> list[str]:
    diff = difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(), n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


@pytest.mark.parametrize("name", ["index.html", "report.md"])
def test_pages_differ_at_most_in_the_generated_line(builds: tuple[Path, Path], name: str) -> None:
    first, second = (out / name for out in builds)
    lines = first.read_text().splitlines()
    generated = [line for line in lines if "Generated " in line]
    assert len(generated) == 1 and len(generated[0]) < 400  # the stamp has a line of its own
    assert all("Generated " in line for line in _differing_lines(first, second))


def test_markdown_links_the_pdf_beside_the_svg(builds: tuple[Path, Path]) -> None:
    md = (builds[0] / "report.md").read_text()
    assert "[SVG](figures/theory_sigmoid_stack.svg)" in md
    assert "[PDF](figures/theory_sigmoid_stack.pdf)" in md


def test_building_leaves_the_callers_rcparams_as_they_were(store: Path, tmp_path: Path) -> None:
    matplotlib.get_backend()  # resolve an automatic backend first: pyplot would, on first use
    with matplotlib.rc_context({"svg.hashsalt": "the caller's salt", "lines.linewidth": 3.0}):
        before = matplotlib.rcParams.copy()
        build(store, tmp_path / "out")
        after = matplotlib.rcParams.copy()
        assert matplotlib.rcParams["svg.hashsalt"] == "the caller's salt"
    assert dict(after) == dict(before)


def test_a_builtin_architecture_has_one_colour_whatever_else_is_drawn() -> None:
    alone = palette(["rnn"])["rnn"]
    assert alone == palette(["gru", "lstm", "rnn", "mycell"])["rnn"] == BUILTIN_COLOURS["rnn"]
    assert palette(["lstm", "lstm_ln"]) == {
        "lstm": BUILTIN_COLOURS["lstm"],
        "lstm_ln": BUILTIN_COLOURS["lstm_ln"],
    }


def test_builtin_colours_are_distinct_and_cover_every_builtin_architecture() -> None:
    from rnnbench.models.architectures import ARCHITECTURES

    builtins = {name for name in ARCHITECTURES if ARCHITECTURES.get(name).module is None}
    assert builtins <= set(BUILTIN_COLOURS)
    colours = [c.lower() for c in BUILTIN_COLOURS.values()]
    assert len(set(colours)) == len(colours)
    assert not {c.lower() for c in USER_COLOURS} & set(colours)


def test_a_user_architecture_has_a_stable_colour_of_its_own() -> None:
    mine = palette(["mycell"])["mycell"]
    assert (
        mine == palette(["rnn", "lru", "mycell", "zzz"])["mycell"] == palette(["mycell"])["mycell"]
    )
    assert mine in USER_COLOURS
    assert mine.lower() not in {c.lower() for c in BUILTIN_COLOURS.values()}
    many = palette([f"cell{i}" for i in range(40)])
    assert set(many.values()) <= set(USER_COLOURS) and len(set(many.values())) > 1


def test_a_user_colour_does_not_depend_on_the_process() -> None:
    code = "from rnnbench.report.style import palette; print(palette(['mycell'])['mycell'])"
    env = {**os.environ, "PYTHONHASHSEED": _other_hash_seed()}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == palette(["mycell"])["mycell"]
