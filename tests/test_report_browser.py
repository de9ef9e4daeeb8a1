"""The report as a reader sees it: opened in headless Chromium (Debian's, installed by .ci/run),
driven by Playwright."""
import os

import pytest

from accelbench.reports import browser
from accelbench.reports.html import write_report
from accelbench.store import load_runs

from helpers.synthetic_runs import ceiling_pair, decode_record, gemm_record, membw_record, write_synthetic_run


def _require_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if browser.chromium_path() is None:
        missing.append("chromium (apt-get install chromium)")
    if missing and os.environ.get("CI"):
        pytest.fail("CI must run the browser check; missing: " + ", ".join(missing))
    if missing:
        pytest.skip("needs " + ", ".join(missing))


def test_report_opens_in_chromium_without_errors_and_its_top_is_not_blank(tmp_path):
    _require_browser()
    runs = load_runs([
        write_synthetic_run(tmp_path / "a", "Device A", [gemm_record(n, 100.0 + n / 50) for n in (256, 1024, 4096)]
                            + [membw_record(2**30, 2000.0), membw_record(2**31, 2050.0), decode_record(1, 90.0), decode_record(16, 1200.0)],
                            label="<script>alert(1)</script>", ceilings=ceiling_pair(180.0, 2100.0)),
        write_synthetic_run(tmp_path / "b", "Device B", [gemm_record(n, 150.0 + n / 40) for n in (256, 1024, 4096)]
                            + [decode_record(1, 120.0)], ceilings=ceiling_pair(260.0, 3000.0))])
    page = write_report(runs, tmp_path / "report.html")
    check = browser.check_page(page, sections=("bench-gemm",))
    assert check.console_errors == []
    assert check.images >= 4 and check.broken_images == []  # roofline, gemm, membw and decode plots all decode
    assert check.page_width <= browser.WIDTH  # wide tables scroll inside the page, the page does not
    assert not browser.blank(check.top_screenshot)
    assert not browser.blank(check.section_screenshots["bench-gemm"])
    from PIL import Image
    import io
    assert Image.open(io.BytesIO(check.top_screenshot)).size == (browser.WIDTH, browser.HEIGHT)


def test_blank_detects_a_page_of_one_colour():
    from PIL import Image
    import io
    buf = io.BytesIO()
    Image.new("RGB", (50, 40), "white").save(buf, format="PNG")
    assert browser.blank(buf.getvalue())
