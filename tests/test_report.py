"""Behaviour of rnnbench.report: files, numbers, comparison mode, edge cases, a real browser."""

from __future__ import annotations

import json
import math
import re
import shutil
import sqlite3
import subprocess
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import pytest

import rnnbench
from rnnbench.diagnostics.theory import run_theory_check
from rnnbench.report import build_report
from rnnbench.results.store import load_results

_DIAG = """
[diagnostics]
checkpoints = 1
eval_size = 64
profile_batch_size = 8
probe_max_lag = 4
probe_size = 32
curve_points = 50
"""
TINY = (
    """
name = "tiny"
[grid]
task = ["copy", "adding"]
arch = ["rnn", "lstm"]
seq_len = [6, 10]
clip = ["none", "norm:1.0"]
seed = [0, 1]
[model]
hidden_size = 8
[train]
steps = 20
batch_size = 16
lr = 1e-2
"""
    + _DIAG
)
# identity init with gain 3 and lr 10 on a ReLU RNN: the gradient explodes within a few steps
DIVERGE = (
    """
name = "diverge"
[grid]
task = ["adding"]
arch = ["rnn_relu"]
seq_len = [10]
clip = ["none"]
seed = [0]
[model]
hidden_size = 8
init = "identity"
init_gain = 3.0
[train]
steps = 20
batch_size = 16
lr = 10.0
"""
    + _DIAG
)


def _build(stores: list[Path], out: Path, labels: list[str] | None = None) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return build_report(stores, out, labels=labels, theory=run_theory_check())


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report_store")
    path = root / "tiny.db"
    for name, text in (("tiny.toml", TINY), ("diverge.toml", DIVERGE)):
        (root / name).write_text(text)
        rnnbench.run_sweep(root / name, path, workers=0, progress=None)
    return path


@pytest.fixture(scope="session")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build([store], tmp_path_factory.mktemp("report") / "out")


def _edited_copy(store: Path, dest: Path, *statements: str) -> Path:
    shutil.copy(store, dest)
    with sqlite3.connect(dest) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()
    return dest


def test_store_really_has_a_diverged_run(store: Path) -> None:
    frame = load_results(store)
    diverged = frame[frame["status"] == "diverged"]
    assert len(diverged) == 1 and diverged.iloc[0]["arch"] == "rnn_relu"


def test_files_exist_and_html_is_self_contained(report: Path) -> None:
    out = report.parent
    assert report.name == "index.html" and report.is_file()
    assert (out / "report.md").is_file()
    assert len(list((out / "figures").glob("*.png"))) >= 7
    assert len(list((out / "figures").glob("*.svg"))) >= 7
    assert {p.stem for p in (out / "tables").glob("*.csv")} >= {"headline", "stability", "memory"}
    text = report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", text, re.I)
    srcs = re.findall(r"<img\b[^>]*\bsrc='([^']*)'", text)
    assert len(srcs) == len(re.findall(r"<img\b", text)) >= 7
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(re.search(r"\balt='[^']+'", tag) for tag in re.findall(r"<img\b[^>]*>", text))
    for anchor in ("headline", "memory", "stability", "theory", "metadata"):
        assert f"href='#{anchor}'" in text and f"id='{anchor}'" in text
    assert "<details>" in text and "name = &quot;tiny&quot;" in text  # sweep text, escaped
    # the diverged run is listed, not hidden
    problems = pd.read_csv(out / "tables" / "problem_runs.csv")
    assert list(problems["status"]) == ["diverged"]
    assert problems["run_id"].iloc[0] in text


def test_headline_solved_counts_match_the_store(store: Path, report: Path) -> None:
    frame = load_results(store)
    table = pd.read_csv(report.parent / "tables" / "headline.csv")
    assert len(table) == frame.groupby(["task", "arch", "seq_len", "clip"]).ngroups
    for row in table.itertuples():
        runs = frame[
            (frame["task"] == row.task)
            & (frame["arch"] == row.arch)
            & (frame["seq_len"] == row.seq_len)
            & (frame["clip"] == row.clip)
        ]
        assert row.runs == len(runs)
        assert row.solved == sum(v is True for v in runs["solved"])
        losses = runs["normalized_loss"].dropna()
        assert row.norm_loss_n == len(losses)
        if len(losses):
            assert math.isclose(row.norm_loss_median, float(losses.median()), rel_tol=1e-9)
    # the displayed cell "k/n" is in the HTML and markdown
    first = table.iloc[0]
    assert f"{first.solved}/{first.runs}" in (report.parent / "report.md").read_text()


def test_comparison_mode_compares_with_every_baseline_architecture(
    store: Path, tmp_path: Path
) -> None:
    other = _edited_copy(
        store, tmp_path / "other.db", "UPDATE runs SET normalized_loss = normalized_loss * 2"
    )
    index = _build([store, other], tmp_path / "cmp", labels=["mine", "lstm<ref>"])
    text = index.read_text()
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert "lstm&lt;ref&gt; against mine" in text  # labels are HTML-escaped
    assert "<ref>" not in text
    # one table per task and baseline architecture (rnn_relu: the diverging run's)
    for task in ("copy", "adding"):
        for arch in ("rnn", "lstm"):
            assert f"task: {task} · lstm<ref> against mine's {arch}" in md
    assert "Δ norm. loss" in md and "Δ divergence rate" in md
    headline = pd.read_csv(tmp_path / "cmp" / "tables" / "headline.csv")
    assert set(headline["label"]) == {"mine", "lstm<ref>"}
    compared = pd.read_csv(tmp_path / "cmp" / "tables" / "comparison.csv")
    # the same-name pair: the copy's losses are doubled, so its Δ is the median loss itself
    same = compared[(compared["arch"] == compared["against"]) & (compared["arch"] == "lstm")]
    mine = headline[(headline["label"] == "mine") & (headline["arch"] == "lstm")]
    merged = same.merge(mine, on=["task", "seq_len", "clip"], suffixes=("", "_store"))
    assert len(merged) == 8
    assert merged["baseline_norm_loss_median"].to_numpy() == pytest.approx(
        merged["norm_loss_median_store"].to_numpy(), rel=1e-9
    )
    assert merged["delta_norm_loss_median"].to_numpy() == pytest.approx(
        merged["norm_loss_median_store"].to_numpy(), rel=1e-9
    )


@pytest.mark.parametrize(
    "case, statements",
    [
        (
            "errors_and_diverged",
            [
                "UPDATE runs SET status='error', error='RuntimeError: <boom> & co',"
                " final_loss=NULL,"
                " normalized_loss=NULL, solved=NULL, grad_factor=NULL, curves=NULL, profiles=NULL,"
                " probe=NULL WHERE seed = 1 AND task = 'copy'",
            ],
        ),
        ("single_seed_single_T", ["DELETE FROM runs WHERE seed = 1 OR seq_len = 6"]),
        # an incomplete sweep: one clip mode lacks a T entirely (a heatmap column is empty)
        ("missing_cells", ["DELETE FROM runs WHERE clip = 'norm:1' AND seq_len = 10"]),
        (
            "only_errors",
            [
                "UPDATE runs SET status='error', error='boom', final_loss=NULL,"
                " normalized_loss=NULL,"
                " solved=NULL, grad_factor=NULL, grad_factor_init=NULL, max_grad_norm=NULL,"
                " memory_capacity=NULL, probe_span=NULL, curves=NULL, profiles=NULL, probe=NULL,"
                " diverged_step=NULL",
            ],
        ),
    ],
)
def test_edge_case_stores_build(
    store: Path, tmp_path: Path, case: str, statements: list[str]
) -> None:
    edited = _edited_copy(store, tmp_path / f"{case}.db", *statements)
    index = _build([edited], tmp_path / case)
    text = index.read_text()
    assert "Theory check" in text
    if case == "errors_and_diverged":
        assert "RuntimeError: &lt;boom&gt; &amp; co" in text
        assert "<boom>" not in text
    if case == "only_errors":
        assert "No data" in text


# --- real browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
# Injected into a copy of the page: collects errors (a failed <img> fires a capturing 'error'
# event on window), console.error calls, image decode state and non-data resource requests, and
# writes them as JSON into the DOM, which --dump-dom returns.
_PROBE = """<script>
window.__errs = [];
window.addEventListener('error', e => {
  const t = e.target;
  window.__errs.push(e.message || ('resource failed: ' + (t && (t.src || t.href))));
}, true);
const origError = console.error;
console.error = (...a) => { window.__errs.push('console.error: ' + a.join(' ')); origError(...a); };
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const out = {
    errors: window.__errs,
    images: imgs.length,
    undecoded: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    requests: performance.getEntriesByType('resource').map(r => r.name)
      .filter(n => !n.startsWith('data:')),
  };
  const pre = document.createElement('pre');
  pre.id = '__probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (scripts/setup.sh --with-browser installs it)",
)
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("<head>", "<head>" + _PROBE, 1))
    result = _chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    match = re.search(r"<pre id=\"__probe\">(.*?)</pre>", result.stdout, re.S)
    assert match, f"probe did not run; stderr: {result.stderr[-2000:]}"
    found = json.loads(
        match.group(1)
        .replace("&quot;", '"')
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
    )
    assert found["images"] >= 7
    assert found["undecoded"] == []
    assert found["errors"] == []
    assert found["requests"] == []
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1280,4000", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
