"""Open a report in headless Chromium (the system's, driven by Playwright; nothing downloaded) and
say what a reader would see: console errors, images that do not decode, horizontal overflow of a
1400-pixel window, and screenshots. For the tests, and for the screenshots in docs/."""
from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

WIDTH, HEIGHT = 1400, 900
# As root in a sandbox with no network: no sandbox, no GPU, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_path() -> Optional[str]:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    images: int = 0
    broken_images: list[str] = field(default_factory=list)
    page_width: int = 0
    top_screenshot: bytes = b""
    section_screenshots: dict[str, bytes] = field(default_factory=dict)


def check_page(html_file: Path, sections: tuple[str, ...] = (), chromium: Optional[str] = None) -> PageCheck:
    """Load `html_file` at 1400x900; screenshot the top and each element id in `sections`."""
    from playwright.sync_api import sync_playwright
    executable = chromium or chromium_path()
    if executable is None:
        raise RuntimeError("no Chromium found (apt-get install chromium)")
    check = PageCheck()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            page.on("console", lambda m: check.console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: check.console_errors.append(str(e)))
            page.goto(Path(html_file).resolve().as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
            check.images = len(images)
            check.broken_images = [alt for alt, ok in images if not ok]
            check.page_width = page.evaluate("document.documentElement.scrollWidth")
            check.top_screenshot = page.screenshot(clip={"x": 0, "y": 0, "width": WIDTH, "height": HEIGHT})
            for element_id in sections:
                page.evaluate(f"document.getElementById({element_id!r}).scrollIntoView()")
                check.section_screenshots[element_id] = page.screenshot()
        finally:
            browser.close()
    return check


def blank(png: bytes) -> bool:
    """True for a screenshot of one colour (or nearly: fewer than 1 % of pixels differ from the commonest)."""
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=image.width * image.height)
    commonest = max(count for count, _ in colours)
    return len(colours) < 3 or commonest > 0.99 * image.width * image.height
