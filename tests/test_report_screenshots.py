"""Full-page screenshots of the smoke, demo and two comparison reports in headless chromium.

Four reports are drawn as a reader sees them, 1280 px wide and as tall as the page:

* ``smoke.png``: a tiny sweep of every task (copy, adding) x rnn/lstm/gru x three clip modes;
* ``demo.png``: the committed reference report ``reports/demo/index.html``, as it is;
* ``comparison.png``: a two-label comparison, the built-ins ("baseline") against a user's cell
  ("mine": ``mgu`` and the lstm), from :func:`helpers.comparison_stores`;
* ``compare.png``: the committed reference comparison ``reports/compare/index.html`` (the
  demo's runs against the user cell of ``examples/compare_cell``), as it is.

Each PNG is checked: a PNG signature, 1280 px wide, as tall as the page measured in the same
browser (capped at :data:`MAX_HEIGHT` px; a taller page is shot to the cap and the test says so),
and not blank (no stretch of :data:`MAX_BLANK` px or more without anything drawn).

To look at the screenshots, name a folder for them (created if missing; without it they go to
pytest's tmp_path and are thrown away)::

    RNNBENCH_SCREENSHOTS=/tmp/shots .venv/bin/python -m pytest tests/test_report_screenshots.py -rP

``-rP`` prints each file's size and path (and says when a page was taller than the cap). The
reports themselves are kept next to the screenshots (``smoke/``, ``comparison/``), to open in a
browser too. Skipped when chromium is not installed (``scripts/setup.sh --with-browser``).
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, REPORT_SMOKE, comparison_stores
from test_report import CHROMIUM, _chromium

import rnnbench
import rnnbench.execution.local
from rnnbench.report import build_report

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (scripts/setup.sh --with-browser installs it)",
)

#: the width a reader's browser window has
WIDTH = 1280
#: the tallest screenshot taken; a taller page is shot down to here
MAX_HEIGHT = 30_000
#: a stretch of identical pixel rows this tall means the browser stopped drawing
MAX_BLANK = 1_500

DEMO = REPO / "reports" / "demo" / "index.html"
COMPARE = REPO / "reports" / "compare" / "index.html"

# Injected into a copy of the page: once everything has loaded, writes the page's height into
# the DOM, which --dump-dom returns.
_HEIGHT_PROBE = """<script>
window.addEventListener('load', () => {
  const h = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
  const pre = document.createElement('pre');
  pre.id = '__height';
  pre.textContent = String(Math.ceil(h));
  document.body.appendChild(pre);
});
</script>"""
# the same window for measuring and shooting: no scrollbar taking width, images given time
_WINDOW = ("--hide-scrollbars", "--virtual-time-budget=10000")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Shot:
    path: Path
    page_height: int  # the page's full height, px
    width: int  # the PNG's size, px
    height: int

    @property
    def cut(self) -> bool:
        return self.page_height > self.height

    def describe(self) -> str:
        size = f"{self.width}x{self.height} px, {self.path.stat().st_size / 1e6:.1f} MB"
        cut = f"; the page is {self.page_height} px tall: only the top is shown" if self.cut else ""
        return f"{self.path}: {size}{cut}"


def page_height(html: Path, scratch: Path) -> int:
    """The full height (px) of ``html`` drawn :data:`WIDTH` px wide in headless chromium."""
    probed = scratch / f"{html.stem}.probed.html"
    text = html.read_text(encoding="utf-8")
    assert "<head>" in text, f"{html}: no <head> to put the height probe in"
    probed.write_text(text.replace("<head>", "<head>" + _HEIGHT_PROBE, 1), encoding="utf-8")
    result = _chromium(*_WINDOW, f"--window-size={WIDTH},800", "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="__height">(\d+)</pre>', result.stdout)
    assert match, f"height probe did not run on {html}; stderr: {result.stderr[-2000:]}"
    return int(match.group(1))


def full_page_screenshot(html: Path, png: Path, scratch: Path) -> Shot:
    """Screenshot ``html`` whole (down to :data:`MAX_HEIGHT` px) into ``png``."""
    height = page_height(html, scratch)
    shot = min(height, MAX_HEIGHT)
    png.unlink(missing_ok=True)
    result = _chromium(
        *_WINDOW, f"--window-size={WIDTH},{shot}", f"--screenshot={png}", html.resolve().as_uri()
    )
    assert png.is_file(), f"no screenshot of {html}; stderr: {result.stderr[-2000:]}"
    width, drawn = png_size(png)
    return Shot(png, height, width, drawn)


def png_size(png: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which a PNG has first."""
    data = png.read_bytes()[:24]
    assert data[:8] == _PNG_SIGNATURE, f"{png} is not a PNG"
    assert data[12:16] == b"IHDR", f"{png}: no IHDR chunk first"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def png_rows(png: Path) -> list[bytes]:
    """The PNG's scanlines as stored (filter byte + filtered bytes), without un-filtering.

    Un-filtering is not needed to tell drawn from blank: chromium's encoder stores a row equal
    to the one above with the "up" filter, as zeros, so a blank stretch is a run of equal rows.
    """
    data = png.read_bytes()
    width, height = png_size(png)
    depth, colour, _, _, interlace = struct.unpack(">BBBBB", data[24:29])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    assert depth == 8 and channels and interlace == 0, (
        f"{png}: unexpected format (bit depth {depth}, colour type {colour}, interlace {interlace})"
    )
    pos, idat = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat.append(data[pos + 8 : pos + 8 + length])
        if kind == b"IEND":
            break
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = 1 + width * channels
    assert len(raw) == stride * height, f"{png}: pixel data has the wrong length"
    return [raw[i * stride : (i + 1) * stride] for i in range(height)]


def longest_blank(rows: list[bytes]) -> tuple[int, int]:
    """(length, first row) of the longest run of equal rows below the first row."""
    best, start = (0, 0), 1
    for i in range(2, len(rows) + 1):
        if i == len(rows) or rows[i] != rows[i - 1]:
            best = max(best, (i - start, start))
            start = i
    return best


# --- the three reports ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go: $RNNBENCH_SCREENSHOTS, else a pytest temporary folder."""
    named = os.environ.get("RNNBENCH_SCREENSHOTS")
    if not named:
        return tmp_path_factory.mktemp("screenshots")
    folder = Path(named).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def smoke_report(shots: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shots_smoke")
    (root / "smoke.toml").write_text(REPORT_SMOKE)
    rnnbench.run_sweep(root / "smoke.toml", root / "smoke.db", workers=0, threads=1, progress=None)
    return build_report([root / "smoke.db"], shots / "smoke")


@pytest.fixture(scope="module")
def comparison_report(shots: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    baseline, mine = comparison_stores(tmp_path_factory.mktemp("shots_comparison"))
    return build_report([baseline, mine], shots / "comparison", labels=["baseline", "mine"])


@pytest.fixture(scope="module")
def demo_report() -> Path:
    assert DEMO.is_file(), f"the reference report {DEMO} is missing"
    return DEMO


@pytest.fixture(scope="module")
def compare_report() -> Path:
    assert COMPARE.is_file(), f"the reference report {COMPARE} is missing"
    return COMPARE


@pytest.mark.parametrize("name", ["smoke", "demo", "comparison", "compare"])
def test_full_page_screenshot(
    name: str, shots: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    html: Path = request.getfixturevalue(f"{name}_report")
    shot = full_page_screenshot(html, shots / f"{name}.png", tmp_path)
    print(shot.describe())
    assert shot.width == WIDTH
    assert shot.height == min(shot.page_height, MAX_HEIGHT), (
        f"{shot.describe()}, but the page measured {shot.page_height} px"
    )
    # a report is far taller than one screen: a short page lost its sections
    assert shot.page_height > 2_000, f"{name}: the page is only {shot.page_height} px tall"
    rows = png_rows(shot.path)
    assert len({byte for row in rows[:: max(1, len(rows) // 200)] for byte in row}) > 32, (
        f"{name}: the screenshot is (nearly) one colour"
    )
    blank, at = longest_blank(rows)
    assert blank < MAX_BLANK, f"{name}: nothing drawn from y={at} to y={at + blank} px"
