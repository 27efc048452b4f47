"""HTML / Markdown reports over one or more results stores.

Public API::

    build_report(["results.db"], "report/")            # -> report/index.html
    build_report(["mine.db", "lstm.db"], "cmp/", labels=["mine", "lstm"])   # comparison mode
    build_report(["results.db"], "report/", theory=run_theory_check())     # + theory check

The report reads stored records only (no torch): the theory check, which measures with torch,
is computed by the caller (:func:`rnnbench.diagnostics.theory.run_theory_check`; the CLI's
``report --theory``) and handed in.
"""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import pandas as pd

from rnnbench.errors import ConfigError
from rnnbench.report import dynamics as dyn
from rnnbench.report import figures as figs
from rnnbench.report.axes import Axes, every_value, figure_runs, swept_axes
from rnnbench.report.comparison import comparison_note, comparison_numbers, comparison_views
from rnnbench.report.figures import Figures
from rnnbench.report.memory_table import memory_note, memory_numbers, memory_views
from rnnbench.report.models import models_numbers, models_view
from rnnbench.report.question import question_note, question_numbers, question_views
from rnnbench.report.render import Section, html_table, md_table, render_html, save_figure
from rnnbench.report.style import Ctx, hidden_missing
from rnnbench.report.tables import (
    DASH,
    NOTATION,
    disagree_note,
    problem_runs,
    recorded,
    stability_numbers,
    stability_views,
)
from rnnbench.report.theory import TheoryData, theory_section
from rnnbench.results.grouping import load_pooled_runs
from rnnbench.results.store import Store


def _default_labels(stores: Sequence[str | Path]) -> list[str]:
    """The stores' file stems; their paths where two stems collide."""
    paths = [Path(s) for s in stores]
    if len({p.resolve() for p in paths}) < len(paths):
        raise ConfigError(f"--store: the same store is given twice ({', '.join(map(str, paths))})")
    stems = [p.stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [str(p.with_suffix("")) for p in paths]


def _label_frames(
    stores: Sequence[str | Path],
    labels: Sequence[str] | None,
    runs: Collection[str] | None = None,
) -> pd.DataFrame:
    if not stores:
        raise ConfigError("--store: build_report needs at least one store")
    labels = _default_labels(stores) if labels is None else list(labels)
    if len(labels) != len(stores):
        raise ConfigError(
            f"--label: give one label per --store ({len(stores)} stores, {len(labels)} "
            f"label{'' if len(labels) == 1 else 's'})"
        )
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--label: labels must be unique, got {', '.join(labels)}")
    frames = []
    for store, label in zip(stores, labels, strict=True):
        frame = load_pooled_runs(store, runs)
        frame.insert(0, "label", label)
        frames.append(frame)
    combined = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    combined.attrs["labels"] = labels
    return combined


def _metadata_section(
    frame: pd.DataFrame, stores: Sequence[str | Path], labels: list[str], section: Section
) -> None:
    rows: dict[str, dict[str, str]] = {}
    for store, label in zip(stores, labels, strict=True):
        sub = frame[frame["label"] == label]
        envs = [e for e in sub["env"] if isinstance(e, dict)]
        env = envs[0] if envs else {}
        counts = sub["status"].value_counts()
        stamps = sorted(str(s) for s in sub["created_at"].dropna())
        rows[label] = {
            "store": str(store),
            "sweeps": ", ".join(sorted({str(s) for s in sub["sweep"].dropna()})) or DASH,
            "runs": str(len(sub)),
            **{f"status {s}": str(int(counts.get(s, 0))) for s in ("ok", "diverged", "error")},
            **{
                key: str(env.get(key, DASH))
                for key in (
                    "rnnbench",
                    "torch",
                    "python",
                    "device",
                    "device_name",
                    "threads",
                    "git_revision",
                )
            },
            "runs recorded": f"{stamps[0]} … {stamps[-1]}" if stamps else DASH,
        }
    view = pd.DataFrame.from_dict(rows, orient="index")
    view.index.name = "label"
    section.table("", view.T.rename_axis(index="field", columns=None), text=True)
    for store, label in zip(stores, labels, strict=True):
        sub = frame[frame["label"] == label]
        with Store(store, readonly=True) as db:
            for sweep in sorted({str(s) for s in sub["sweep"].dropna()}):
                text = db.get_meta(f"sweep:{sweep}")
                if not isinstance(text, str):
                    continue
                title = f"sweep file '{sweep}' ({label})"
                section.html.append(
                    f"<details><summary>{html.escape(title)}</summary>"
                    f"<pre>{html.escape(text)}</pre></details>"
                )
                section.md.append(
                    f"<details><summary>{title}</summary>\n\n```toml\n{text}\n```\n\n</details>"
                )
    problems = problem_runs(frame)
    section.html.append("<h3>Failed and diverged runs</h3>")
    section.md.append("### Failed and diverged runs")
    if problems.empty:
        section.para("None: every run finished without diverging.")
    else:
        view = problems.set_index("run_id")
        section.html.append(html_table(view, text=True))
        section.md.append(md_table(view))


def _safe(make: Callable[[pd.DataFrame, Ctx], Figures], frame: pd.DataFrame, ctx: Ctx) -> Figures:
    usable = frame[frame["status"] != "error"]
    return make(usable, ctx) if not usable.empty else []


_FIGURE_SECTIONS = (
    ("fig-profiles", "Gradient norm through time", figs.fig_gradient_profiles),
    ("fig-cell", "LSTM cell-state gradient through time", dyn.fig_cell_gradient),
    ("fig-sigma", "Step Jacobian σ_1 through time", dyn.fig_jacobian_sigma),
    ("fig-lyapunov", "Lyapunov spectrum", dyn.fig_lyapunov_spectrum),
    ("fig-saturation", "Saturation through time", dyn.fig_saturation),
    ("fig-task-probe", "Task memory probe", dyn.fig_task_probe),
    ("fig-learning", "Learning curves", figs.fig_learning_curves),
    ("fig-solved", "Solved rate", figs.fig_solved_heatmap),
    ("fig-factor", "Per-step gradient factor", figs.fig_grad_factor),
    ("fig-memory", "Memory capacity", figs.fig_memory_capacity),
    ("fig-gradnorm", "Gradient norm during training", figs.fig_grad_norm_training),
)
#: the sections of the dynamics, which runs stored before rnnbench recorded them lack
_DYNAMICS_SECTIONS = frozenset(
    ("fig-cell", "fig-sigma", "fig-lyapunov", "fig-saturation", "fig-task-probe")
)


def _models_section(models: pd.DataFrame, labels: list[str], axes: Axes) -> Section:
    s = Section("models", "Models: trainable parameters")
    s.para(
        "Trainable parameter count per architecture and task (input and output widths are "
        "the task's); in parentheses, the ratio to the task's smallest model: read a solved "
        "count against the size of the model that reached it."
    )
    if models["parameters_min"].notna().any():
        s.table("", models_view(models, labels, list(axes.shown)))
    else:
        s.para("Not recorded: these runs were stored before rnnbench recorded the count.")
    return s


def _table_sections(
    frame: pd.DataFrame, labels: list[str], tabledir: Path, axes: Axes
) -> list[Section]:
    """The headline, models, memory and stability sections; their numbers are written as CSV
    (with a column per swept field, even a fixed one; the views show the varying ones)."""
    headline = question_numbers(frame)
    stability = stability_numbers(frame)
    memory = memory_numbers(frame)
    models = models_numbers(frame)
    compared = comparison_numbers(headline, labels, list(axes.shown))
    for name, table in (
        ("headline", headline),
        *((("comparison", compared),) if len(labels) > 1 else ()),
        ("stability", stability),
        ("memory", memory),
        ("models", models),
        ("problem_runs", problem_runs(frame)),
    ):
        table.to_csv(tabledir / f"{name}.csv", index=False)
    s = Section("headline", "Headline: what each architecture learns, and what clipping buys")
    s.para(question_note(labels, axes.shown))
    for caption, view in question_views(headline, labels, axes.shown):
        s.table(caption, view)
    if note := disagree_note(headline):
        s.para(note)
    sections = [s]
    if len(labels) > 1:
        s = Section("comparison", f"Comparison: against every architecture of {labels[0]}")
        s.para(comparison_note(labels))
        for caption, view in comparison_views(headline, compared, labels, axes.shown):
            s.table(caption, view)
        sections.append(s)
    sections.append(_models_section(models, labels, axes))
    s = Section("memory", "Memory span")
    s.para(memory_note(memory))
    for caption, view in memory_views(memory, labels, axes.shown):
        s.table(caption, view)
    sections.append(s)
    s = Section("stability", "Stability")
    s.para(_stability_note(stability))
    for caption, view in stability_views(stability, labels, axes.shown):
        s.table(caption, view)
    sections.append(s)
    return sections


def _stability_note(stability: pd.DataFrame) -> str:
    text = (
        "One row per T (each cell over that T's seeds): divergence rate among finished runs, "
        "max pre-clip global gradient norm, fraction of steps clipped and the per-step "
        "gradient factor r (< 1 vanishing, > 1 exploding)"
    )
    if not any(recorded(stability, c) for c in ("lyapunov_max", "lyapunov_max_init")):
        return text + (
            ". The largest Lyapunov exponent λ_1 and the step Jacobian's σ_1: not recorded "
            "(switched off in [diagnostics], or the runs were stored before rnnbench recorded "
            "the dynamics)."
        )
    text += (
        "; the largest Lyapunov exponent λ_1 at init and at the end (nats per step: < 0 "
        "contracting, the network forgets; ≈ 0 marginal; > 0 chaotic) and the geometric mean "
        "over the task's recurrence window of σ_1, the step Jacobian's largest singular value "
        "(< 1 the gradient shrinks at a typical step)."
    )
    if (pd.to_numeric(stability["lyapunov_max_n"], errors="coerce") == 0).any():
        text += (
            f" {DASH} in a λ_1 or σ_1 column: not recorded (runs stored before rnnbench "
            "recorded the dynamics, or an architecture without a step)."
        )
    return text


def _section_figures(
    frame: pd.DataFrame, ctx: Ctx, every: tuple[pd.DataFrame, Ctx]
) -> Iterator[tuple[str, str, Figures | None]]:
    """Each figure section's anchor, title and figures, of ``frame`` (the held fields at one
    value); the solved-rate heatmap, whose rows name the values, of ``every`` run. ``None``:
    the dynamics of runs stored before rnnbench recorded them."""
    finished = frame[frame["status"] != "error"]
    # no finished run at all: "No data", as every figure section says
    old = not finished.empty and not dyn.dynamics_recorded(finished)
    for anchor, title, make in _FIGURE_SECTIONS:
        if anchor in _DYNAMICS_SECTIONS and old:
            yield anchor, title, None
            continue
        args = every if make is figs.fig_solved_heatmap else (frame, ctx)
        yield anchor, title, _safe(make, *args)


def _figure_sections(
    frame: pd.DataFrame, ctx: Ctx, figdir: Path, every: tuple[pd.DataFrame, Ctx]
) -> list[Section]:
    """The figure sections (:func:`_section_figures`), their figures saved into ``figdir``."""
    sections = []
    for anchor, title, made in _section_figures(frame, ctx, every):
        s = Section(anchor, title)
        sections.append(s)
        if made is None:
            s.para(dyn.NOT_RECORDED)
            continue
        if not made:
            s.para(dyn.EMPTY_NOTES.get(anchor, "No data: no finished run recorded this quantity."))
        for name, fig, caption in made:
            save_figure(name, fig, caption, figdir, s)
    return sections


def _prepared(
    stores: Sequence[str | Path], labels: Sequence[str] | None, runs: Collection[str] | None
) -> tuple[pd.DataFrame, list[str], Axes, list[str]]:
    """The runs of the stores (r on the input profile where some architecture hides its
    state), their labels, swept fields and the architectures without a hidden profile."""
    frame = _label_frames(list(stores), labels, runs)
    axes = swept_axes(frame)
    missing = hidden_missing(frame)
    if missing:  # the tables' r columns follow the figures onto the input profile
        frame = frame.assign(
            grad_factor=frame["input_factor"],
            grad_factor_init=frame["input_factor_init"],
            grad_span=frame["input_span"],
            grad_span_init=frame["input_span_init"],
        )
    return frame, list(frame.attrs["labels"]), axes, missing


def _figure_inputs(
    frame: pd.DataFrame, labels: list[str], axes: Axes
) -> tuple[pd.DataFrame, Ctx, tuple[pd.DataFrame, Ctx]]:
    """The runs the figures draw, their :class:`Ctx`, and every run with its own (the
    heatmap's)."""
    # figures hold some swept fields at one value where there are too many to draw as styles
    drawn = figure_runs(frame, axes)
    ctx = Ctx.of(drawn, multi=len(labels) > 1, axes=axes)
    every = (frame, Ctx.of(frame, multi=len(labels) > 1, axes=every_value(axes)))
    return drawn, ctx, every


def report_figures(
    stores: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    runs: Collection[str] | None = None,
) -> Iterator[tuple[str, Figures]]:
    """Each figure section's anchor and the figures :func:`build_report` would save for it,
    unsaved (layout tests draw them; the caller closes them)."""
    frame, labels, axes, _ = _prepared(stores, labels, runs)
    drawn, ctx, every = _figure_inputs(frame, labels, axes)
    for anchor, _title, made in _section_figures(drawn, ctx, every):
        yield anchor, made or []


def _input_profile_note(missing: list[str]) -> str:
    if not missing:
        return ""
    return (
        f"Profiles: {', '.join(missing)} hide{'s' if len(missing) == 1 else ''} the hidden state "
        "(a sequence core that takes no perturbation), so every architecture is compared on the "
        "input profile ‖∂L/∂x_t‖, exact for any module; r and the profile figures are of it."
    )


def build_report(
    stores: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    runs: Collection[str] | None = None,
    theory: TheoryData | None = None,
) -> Path:
    """Write ``out/index.html`` (self-contained), ``out/report.md``, ``out/figures/*.png|svg|pdf``
    and ``out/tables/*.csv`` for one store, or compare several (one label per store; labels
    default to the store file stems).  ``runs``: only these run ids (one sweep file's runs).
    ``theory``: a computed theory check to add as a section. Returns the path of
    ``index.html``.

    Raises :class:`ConfigError` for a store whose group holds runs of two configurations
    (their seeds would be pooled) and for an ``out`` that is an existing file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file; give a folder for the report")
    frame, labels, axes, missing = _prepared(stores, labels, runs)
    figdir, tabledir = out / "figures", out / "tables"
    figdir.mkdir(parents=True, exist_ok=True)
    tabledir.mkdir(parents=True, exist_ok=True)
    drawn, ctx, every = _figure_inputs(frame, labels, axes)
    sections = _table_sections(frame, labels, tabledir, axes)
    sections += _figure_sections(drawn, ctx, figdir, every)
    if theory is not None:
        theory.table.to_csv(tabledir / "theory.csv", index=False)
        sections.append(theory_section(theory, figdir))
    s = Section("metadata", "Run metadata")
    _metadata_section(frame, list(stores), labels, s)
    sections.append(s)
    title = "rnnbench report: " + " vs ".join(labels)
    note = " ".join(
        p for p in (axes.note(multi=len(labels) > 1), _input_profile_note(missing)) if p
    )
    return _write(out, title, note, sections)


def _write(out: Path, title: str, note: str, sections: list[Section]) -> Path:
    """``index.html`` and ``report.md`` from the sections; returns the HTML's path."""
    generated = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    index = out / "index.html"
    index.write_text(render_html(title, sections, generated, note), encoding="utf-8")
    md = [
        f"# {title}",
        "",
        f"Generated {generated}. {NOTATION}",
        "",
        *([note, ""] if note else []),
    ]
    md += [f"- [{s.title}](#{s.anchor})" for s in sections]
    for s in sections:
        md += ["", f"## {s.title}", "", *("\n\n".join(s.md).splitlines())]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return index
