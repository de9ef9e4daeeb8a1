"""Screenshots of a report as a reader sees it (headless Chromium at 1400x900, driven by
Playwright): the top of the page and the sections named.

    python3 scripts/report_screenshots.py REPORT.html OUT_DIR [SECTION_ID ...]

Writes OUT_DIR/<page>-top.png and OUT_DIR/<page>-<section>.png, <page> being the HTML file's name
without .html (section ids of a report: overview, procurement, roofline, bench-gemm, bench-fp8,
bench-decode, bench-membw, ...; of a history page: flagged). Exits 1 when the page logs a console
error or an image does not decode."""
import sys
from pathlib import Path

from accelbench.reports.browser import blank, check_page

if len(sys.argv) < 3:
    sys.exit(__doc__)
page, out = Path(sys.argv[1]), Path(sys.argv[2])
sections = tuple(sys.argv[3:])
out.mkdir(parents=True, exist_ok=True)
check = check_page(page, sections)
(out / f"{page.stem}-top.png").write_bytes(check.top_screenshot)
for name, png in check.section_screenshots.items():
    (out / f"{page.stem}-{name.removeprefix('bench-')}.png").write_bytes(png)
print(f"{check.images} images, {len(check.broken_images)} broken; page width {check.page_width} px; "
      f"console errors: {check.console_errors or 'none'}; top blank: {blank(check.top_screenshot)}")
sys.exit(1 if check.console_errors or check.broken_images else 0)
