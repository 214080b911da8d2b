"""The HTML report opens in headless Chromium (Debian's `chromium`, installed by `make test`'s
set-up) without console errors, holds its plots with their data points, and renders them.

Without chromium these skip, unless POCKETFIT_REQUIRE_CGROUPS=1 (CI) makes that a failure.
"""

import io
import os
import re
import shutil
import subprocess

import pytest

from pocketfit.runtime.budget import render
from test_budget_reports import fixed_results

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    if os.environ.get("POCKETFIT_REQUIRE_CGROUPS") == "1":
        pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)", pytrace=False)
    pytest.skip("needs Debian's chromium (make test installs it; CI fails instead of skipping)", allow_module_level=True)


def chromium(page, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """Open `page` in a fresh headless Chromium, console messages logged to stderr."""
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", "--enable-logging=stderr",
         "--v=0", "--no-first-run", "--window-size=1000,1200", *args, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


def console_messages(stderr: str) -> list[str]:
    """Chromium logs every console message as `...:INFO:CONSOLE:line] "text", source: ...`, a
    console.error at the same level as a console.log. The report runs no script, so any console
    message at all (an uncaught error, a refused resource) counts as an error."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    page = tmp_path_factory.mktemp("report") / "report.html"
    page.write_text(render("html", fixed_results()), encoding="utf-8")
    return page


def test_console_error_detection_works(tmp_path):
    """The check below is only worth something if a page with a console error is caught."""
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    result = chromium(page, tmp_path, "--dump-dom")
    found = console_messages(result.stderr)
    assert any('"boom"' in m for m in found) and any("Uncaught" in m for m in found), result.stderr[-2000:]


def test_html_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "src=" not in text and "@import" not in text
    assert re.findall(r"url\((?!#)", text) == []  # url(#clip) names a clip path inside the same SVG
    assert "href=\"http" not in text and "href=\"data" not in text
    namespaces = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # identifiers, never fetched
    urls = re.findall(r"https?://[^\"' ]+", text)
    assert set(urls) <= namespaces and urls.count("http://www.w3.org/2000/svg") == text.count("<svg "), urls


def test_opens_in_chromium_with_its_plots_and_no_console_errors(report, tmp_path):
    result = chromium(report, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    dom = result.stdout
    breakdown = re.search(r'<svg id="memory-breakdown".*?</svg>', dom, re.S).group(0)
    segments = re.findall(r'<rect class="segment" data-part="(\w+)" data-bytes="(\d+)"', breakdown)
    assert {part for part, _ in segments} == {"weights_resident", "arena", "runtime"}
    assert len(segments) == 3 * 2  # two cells were measured, three non-zero parts each
    assert breakdown.count('class="budget-mark"') == 2 and breakdown.count('class="limit-mark"') == 2
    curves = re.findall(r'<svg class="latency-curve".*?</svg>', dom, re.S)
    assert len(curves) == 1 and 'data-device="pixel-7a"' in curves[0]
    points = re.findall(r'<g id="point-(\d+)-([0-9.]+)"', curves[0])  # matplotlib writes an artist's gid as its id
    assert [(int(b), float(s)) for b, s in points] == [(60 * 2**20, 0.031), (80 * 2**20, 0.018), (100 * 2**20, 0.0152)]
    assert 'id="budget-3758096384"' in curves[0] and "app budget 3.5 GiB" in curves[0]  # the app budget is marked
    assert dom.count("<tr class=") == 9  # one row per check


def test_screenshot_shows_the_plots(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    result = chromium(report, tmp_path, f"--screenshot={shot}")
    assert shot.is_file(), result.stderr[-2000:]
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size == (1000, 1200)
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 50, "the page looks blank"

    def pixels(rgb):
        return sum(n for n, c in colors if all(abs(a - b) <= 8 for a, b in zip(c, rgb)))

    # The plots' own colours: the resident-weights bars, the arena bars, the latency curve.
    assert pixels((0x3B, 0x6E, 0xA8)) > 500, "no weight bars or curve in the screenshot"
    assert pixels((0xE8, 0xA3, 0x3D)) > 200, "no arena bars in the screenshot"
