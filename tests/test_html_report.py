"""`parity report --html`: a valid, self-contained page; rendered by a real
headless browser where Chromium is installed."""
import base64
from html.parser import HTMLParser
import math
import shutil
import subprocess
import warnings

import pytest

pytest.importorskip("matplotlib")

from parity.cli import main  # noqa: E402
from parity.plots import html_page  # noqa: E402
from test_report import frame, row, write  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a browser would fetch or run, and the text of each table cell."""

    def __init__(self, text):
        super().__init__()
        self.images, self.references, self.scripts, self.cells = [], [], 0, []
        self._in_cell = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        self.references += [attrs[a] for a in ("src", "href") if a in attrs and tag != "img"]
        self.scripts += tag == "script"
        self._in_cell = tag == "td"

    def handle_endtag(self, tag):
        self._in_cell = False

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


def report_rows():
    rows = [row(f"expr-0-{i}", rel_grad=10.0 ** -(i % 17), ops="add;tanh;exp") for i in range(60)]
    rows += [row("expr-0-60", "fail", rel_grad=math.inf, detail="<script>alert('x')</script> engine 1.0"),
             row("edges-0-0", "error", family="edges", rel_grad=math.nan, detail="RecursionError"),
             row("edges-0-1", "ill_conditioned", family="edges", rel_data=0.0, rel_grad=3e-9)]
    return frame(*rows)


def test_the_page_is_self_contained_with_a_png_per_figure_and_escaped_details():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # inf and 0 errors on log axes draw without warnings
        text = html_page(report_rows(), title="a <report>")
    page = Page(text)
    assert len(page.images) == 3
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True).startswith(PNG_MAGIC)
    assert page.references == [] and page.scripts == 0
    assert "<title>a &lt;report&gt;</title>" in text
    assert "<script>alert('x')</script> engine 1.0" in page.cells  # shown as text, not run
    # Failures and errors first, then the other non-passing verdicts; no passes.
    case_cells = [c for c in page.cells if c.startswith(("expr-", "edges-"))]
    assert case_cells == ["expr-0-60", "edges-0-0", "edges-0-1"]


def test_a_page_of_passes_says_so():
    text = html_page(frame(row("expr-0-0"), row("expr-0-1", rel_grad=0.0)))
    assert "Every case passed." in text and len(Page(text).images) == 3


def test_the_report_command_writes_the_page(capsys, tmp_path):
    path = write(tmp_path, report_rows())
    out = tmp_path / "report.html"
    assert main(["report", str(path), "--html", str(out)]) == 1  # it has a failing case
    assert f"html: {out}" in capsys.readouterr().out
    assert len(Page(out.read_text()).images) == 3


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_chromium_renders_the_page(tmp_path):
    import matplotlib.image

    page = tmp_path / "report.html"
    page.write_text(html_page(report_rows()))
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2000",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1200)
    # Not a blank page: the figures' colours are there (pass green, fail red).
    rgb = (pixels[..., :3] * 255).round().reshape(-1, 3)
    for colour in ((0x4c, 0x9a, 0x2a), (0xd6, 0x27, 0x28)):
        assert (abs(rgb - colour).max(axis=1) <= 2).any(), colour


def test_a_sample_keeps_at_most_its_size_and_always_the_largest_point():
    import numpy as np

    from parity.plots import Sample

    rng, sample = np.random.default_rng(1), Sample(100)
    stream = [np.random.default_rng(i).random(1000) for i in range(10)]
    stream[3][500] = 7.0  # the largest, in the middle of the stream
    for chunk in stream:
        sample.add(chunk, rng)
    drawn = sample.drawn()[:, -1]
    assert 100 <= len(drawn) <= 101 and drawn.max() == 7.0
    assert set(drawn) <= set(np.concatenate(stream))
    assert 0.3 < np.median(drawn) < 0.7  # from the whole stream, not its first chunk


def test_a_page_drawn_chunk_by_chunk_has_the_summary_and_the_cases_of_the_whole(tmp_path):
    from parity.plots import Digest
    from parity.report import iter_report

    rows = report_rows()
    digest = Digest()
    for chunk in iter_report(write(tmp_path, rows), chunk_rows=7):
        digest.add(chunk)
    whole = Digest().add(rows)
    assert digest.summary.text() == whole.summary.text()
    assert list(digest.non_passing_rows()["case_id"]) == list(whole.non_passing_rows()["case_id"])
    assert Page(html_page(digest)).cells == Page(html_page(whole)).cells
