"""The demo run's report.html in a real browser: headless Chromium renders it to PNG and A4 PDF,
runs its script without a console message, and its DOM has every section with its content."""

import re
import shutil
import subprocess

import pytest

from onnxdeploy.html_report.sections import SECTIONS as REPORT_SECTIONS

pytestmark = [pytest.mark.browser, pytest.mark.extra]

CHROMIUM = next(
    (
        shutil.which(name)
        for name in ("chromium", "chromium-browser", "google-chrome")
        if shutil.which(name)
    ),
    None,
)
SECTIONS = [anchor for anchor, _ in REPORT_SECTIONS]  # the page's own list: one home


def chromium(tmp_path, page, *flags) -> tuple[str, list[str]]:
    """(stdout, console lines) of headless Chromium on ``page``; flags as the machine's notes say
    (no background networking: the machine has no network and Chromium retries otherwise)."""
    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run(
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
            "--enable-logging=stderr",
            "--v=0",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory):
    pytest.importorskip("torch")
    from onnxdeploy.pipeline import run

    from dataclasses import replace

    from onnxdeploy.pipeline.recipe import DEMO

    if CHROMIUM is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    # the demo with int8 kept even where this machine cannot time it faster: this test is about the
    # page, and an int8 card to render must not hang on a busy machine's timing (whether int8 is
    # kept is quantize's tests' subject)
    stages = tuple(
        (name, {**options, "force_int8": True} if name == "quantize" else options)
        for name, options in DEMO.stages
    )
    result = run(replace(DEMO, stages=stages), runs_dir=tmp_path_factory.mktemp("runs"))
    return result.run_dir / "report.html"


def test_console_check_can_fail(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><script>console.error('planted'); nope();</script></body></html>"
    )
    _, console = chromium(tmp_path, page, "--dump-dom")
    assert any("planted" in line for line in console) and any(
        "nope is not defined" in line for line in console
    )


def test_demo_report_renders_without_console_errors(demo_report, tmp_path):
    dom, console = chromium(tmp_path, demo_report, "--dump-dom")
    assert console == []
    assert 'data-script="ran"' in dom  # the sorting script ran to its end
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    summary = dom[dom.index('id="summary"') : dom.index('id="latency"')]
    for role in ("dense", "compressed", "pruned", "int8"):
        assert f"<h3>{role}</h3>" in summary  # labelled by role, not by a temporary file name
    assert ".partial" not in dom
    assert dom.count("<svg") >= 4  # two latency charts, the quantize scatter, the pruning bars
    assert re.search(r'<tr class="chosen">', dom)


def test_demo_report_png_and_a4_pdf(demo_report, tmp_path):
    png, pdf = tmp_path / "page.png", tmp_path / "page.pdf"
    chromium(tmp_path, demo_report, "--window-size=1200,2400", f"--screenshot={png}")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2400) and len(data) > 50_000  # a drawn page, not a blank one
    chromium(tmp_path, demo_report, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    boxes = set(re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf.read_bytes()))
    assert boxes and all(
        abs(float(b.split()[2]) - 595) < 1 and abs(float(b.split()[3]) - 842) < 1 for b in boxes
    )


def test_tables_sort_in_the_browser(demo_report, tmp_path):
    html = demo_report.read_text()
    probe = """<script>
    var th = document.querySelector("#latency table.sortable th:nth-child(5)");
    th.click();
    var first = document.querySelector("#latency table.sortable tbody tr td:nth-child(5)");
    document.body.setAttribute("data-sorted", th.getAttribute("aria-sort") + " " + first.getAttribute("data-sort"));
    </script></body>"""
    page = tmp_path / "probe.html"
    page.write_text(html.replace("</body>", probe))
    dom, console = chromium(tmp_path, page, "--dump-dom")
    assert console == []
    state = re.search(r'data-sorted="(\w+) ([0-9.e-]+)"', dom)
    cells = [
        float(v)
        for v in re.findall(
            r'<td class="num" data-sort="([0-9.e-]+)"',
            html.split('id="latency"')[1].split("</table>")[0],
        )
    ]
    assert state.group(1) == "ascending"
    p50s = cells[2::6]  # numeric cells per row: batch, threads, p50, p90, p99, samples
    assert float(state.group(2)) == min(p50s)
