"""The README's screenshot of the app, with the bundled styles and the real VGG16.

    python -m docs.figures.make_app_screenshot [--style starry_night] [--photo PATH]

(``NST_VGG_WEIGHTS`` picks the VGG16 file; by default the data folder's, docs.common.VGG16.)

Starts the app as ``python app.py`` would (this machine's defaults), then a person's path in
headless Chromium (Debian's package, driven by Playwright, as in tests/test_browser.py):
upload a photo, pick a style in the gallery, press Stylise, wait for both results. Writes
docs/figures/app.png.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from docs.common import CONTENT, ROOT, VGG16

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CHROMIUM = Path("/usr/bin/chromium")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night", help="zoo id to click")
    parser.add_argument("--photo", type=Path, default=CONTENT / "tubingen.jpg")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/app.png")
    args = parser.parse_args()
    os.environ.setdefault("NST_VGG_WEIGHTS", str(VGG16))
    from playwright.sync_api import expect, sync_playwright

    from app import create_app, default_config, launch
    from tests.test_browser import CHROMIUM_ARGS

    config = default_config()
    demo = create_app(config)
    _, url, _ = launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    import zoo

    index = [s.id for s in zoo.list_styles()].index(args.style)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#photo input[type=file]").set_input_files(str(args.photo))
            expect(page.locator("#photo img")).to_be_visible(timeout=30_000)
            page.locator("#style-gallery button").nth(index).click()
            page.locator("#run").click()
            expect(page.locator("#johnson-result img")).to_be_visible(timeout=60_000)
            done = f"Gatys — {config.gatys_iterations} iterations"  # only the final report
            expect(page.locator("#gatys-status")).to_contain_text(done, timeout=300_000)
            page.wait_for_timeout(1000)  # let the last image paint
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        demo.close()
    print(f"wrote {args.out} ({config.gatys_size} px, {config.gatys_iterations} Gatys iterations)")


if __name__ == "__main__":
    main()
