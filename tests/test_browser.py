"""The page in a real browser: headless Chromium (Debian's package) driven by Playwright.

A person's path: upload a photo, click a painting in the gallery, press Stylise, and see
both result images appear; then open the live webcam (Chromium's fake camera) and see
stylised frames arrive. A screenshot of the page is saved in the test's temp folder;
with ``NST_SAVE_SCREENSHOT=1`` it also goes to docs/figures/app.png for the README.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.test_app import (  # noqa: E402
    _free_port,
    _synthetic_photo,
    build_catalogue,
    tiny_config,
)

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "figures" / "app.png"
# Everything that could make Chromium reach the internet is off: the test is offline.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # A synthetic camera (a moving test pattern), granted without a prompt: the live test.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed at /usr/bin/chromium "
    "(apt-get install -y chromium; .ci/run installs it)",
)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import CONTENT_DIR, REAL_VGG16, STYLE_DIR
    from webapp import create_app, launch

    tmp = tmp_path_factory.mktemp("browser")
    painting = STYLE_DIR / "starry_night.jpg"
    if not painting.is_file():
        painting = _synthetic_photo(tmp / "painting.png", (200, 160))
    photo = CONTENT_DIR / "tubingen.jpg"
    if not photo.is_file():
        photo = _synthetic_photo(tmp / "photo.png")
    vgg = REAL_VGG16 if REAL_VGG16.is_file() else None
    if vgg is None:
        pytest.skip("real VGG16 weights absent (../shared): the Gatys column needs them")
    config = tiny_config(
        build_catalogue(tmp / "zoo", painting), vgg, gatys_size=128, gatys_iterations=8
    )
    demo = create_app(config)
    _, url, _ = launch(
        demo,
        config,
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
    )
    try:
        yield url, photo, tmp
    finally:
        demo.close()


def test_upload_pick_style_run_and_see_both_results(page_url) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, photo, tmp = page_url
    with sync_playwright() as pw:
        # A fresh profile folder per run (Playwright passes it as --user-data-dir).
        browser = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1100},
        )
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.locator("#photo input[type=file]").set_input_files(str(photo))
            expect(page.locator("#photo img")).to_be_visible(timeout=30_000)
            page.locator("#style-gallery button").first.click()  # pick the painting
            page.locator("#run").click()
            johnson = page.locator("#johnson-result img")
            gatys = page.locator("#gatys-result img")
            expect(johnson).to_be_visible(timeout=60_000)
            expect(page.locator("#gatys-status")).to_contain_text(
                "Gatys — 8 iterations", timeout=120_000
            )
            expect(gatys).to_be_visible()
            expect(page.locator("#johnson-status")).to_contain_text("Johnson — ")
            for image in (johnson, gatys):  # decoded pictures, not broken links
                assert image.evaluate("img => img.complete && img.naturalWidth > 0")
            shot = tmp / "app.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("NST_SAVE_SCREENSHOT") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()


def test_live_webcam_frames_arrive_stylised(page_url) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, _, tmp = page_url
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp / "chromium-profile-live"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1400},
            permissions=["camera"],
        )
        try:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text("Live webcam (Johnson)").click()
            live = page.locator("#live-in")
            live.get_by_text("Click to Access Webcam").click()
            live.locator("button", has_text="Record").click()  # starts the stream
            out = page.locator("#live-out img")
            expect(out).to_be_visible(timeout=60_000)
            # A rate needs two frames back; then a third one replaces the picture.
            expect(page.locator("#live-status")).to_contain_text("frames/s", timeout=60_000)
            first = out.get_attribute("src")
            expect(out).not_to_have_attribute("src", first or "", timeout=60_000)
            page.wait_for_function(  # the new frame decoded, not a broken link
                "() => { const i = document.querySelector('#live-out img');"
                " return i !== null && i.complete && i.naturalWidth > 0; }",
                timeout=30_000,
            )
        finally:
            browser.close()
