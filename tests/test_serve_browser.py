"""The CAM viewer's page in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

Skipped when /usr/bin/chromium or Playwright is missing, unless
``MINDGAP_REQUIRE_BROWSER=1`` (set by ``.ci/run``, which installs Chromium), where that is a failure.
"""

import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_REQUIRED = os.environ.get("MINDGAP_REQUIRE_BROWSER") == "1"
SCREENSHOT_METHOD = "/tmp/serve_method.png"  # the page after switching to RISE, to look at

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

_missing = [what for what, present in (("Playwright", sync_playwright is not None), (CHROMIUM, os.path.exists(CHROMIUM))) if not present]
if _missing and _REQUIRED:
    raise RuntimeError(f"The browser test needs {' and '.join(_missing)}; apt-get install chromium and pip install playwright.")
pytestmark = pytest.mark.skipif(bool(_missing), reason=f"needs {' and '.join(_missing)}")


class _Server:
    """uvicorn in a thread, on a socket bound to a free loopback port."""

    def __init__(self, app):
        import uvicorn

        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
        self.socket.close()


def _pixels(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.int16)


def test_upload_top5_cam_and_class_switch_in_chromium(tmp_path):
    import mindgap
    from mindgap.cli import load_mindgap_model
    from mindgap.serve import create_app
    from mindgap.serve.examples import built_in_examples

    for name, model_name in (("gap5", "Tiny-GAP5"), ("zhou", "Tiny-GAP-Zhou")):
        mindgap.build_model(model_name, 10, weights=None, input_shape=(48, 48, 3), class_names=DIGITS).save(tmp_path / f"{name}.keras")
    models = {name: load_mindgap_model(tmp_path / f"{name}.keras") for name in ("gap5", "zhou")}
    image_path = tmp_path / "upload.png"
    image_path.write_bytes(built_in_examples(count=1)[0][1])
    (tmp_path / "not_an_image.png").write_bytes(b"this is text, not a PNG")

    with _Server(create_app(models)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelector('#status').textContent === 'choose an image'")
            assert page.locator("#examples img").count() >= 3

            page.set_input_files("#file", str(image_path))
            panels = page.locator(".panel")
            page.wait_for_function("document.querySelectorAll('.panel .bars li').length === 10")  # both models side by side
            assert panels.count() == 2
            first = panels.nth(0)
            assert first.locator(".bars li").count() == 5
            overlay = first.locator("img.overlay")
            page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=overlay.element_handle())
            assert page.evaluate("(img) => [img.naturalWidth, img.naturalHeight]", overlay.element_handle()) == [160, 160]
            assert first.locator(".grid figure").count() == 10
            before = overlay.screenshot()
            top_class = overlay.get_attribute("data-class-name")

            other = next(name for name in first.locator(".bars li .name").all_inner_texts() if name != top_class)
            page.select_option("#class", other)
            page.wait_for_function(f"(img) => img.dataset.className === {other!r} && img.complete && img.naturalWidth > 0",
                                   arg=overlay.element_handle())
            after = overlay.screenshot()
            assert np.abs(_pixels(after) - _pixels(before)).mean() > 1.0, "the CAM image did not change with the class"
            assert first.locator(".bars li.chosen .name").inner_text() == other
            assert page.locator("#error").is_hidden()
            page.wait_for_function("document.querySelector('#status').textContent === 'ready'")

            # the threshold slider moves the box, and no model runs for it (nor for the class switch above)
            passes = page.evaluate("async () => (await (await fetch('/api/stats')).json()).forward_passes")
            assert passes == 2  # one image, two models
            caption = first.locator("figcaption").first
            low_threshold = caption.inner_text()
            page.locator("#threshold").fill("0.9")
            page.wait_for_function("(el) => el.textContent.includes('threshold 0.90')", arg=caption.element_handle())
            page.wait_for_function("document.querySelector('#status').textContent === 'ready'")
            box = lambda text: text.split("box [")[1].split("]")[0]  # noqa: E731
            assert box(caption.inner_text()) != box(low_threshold)
            assert page.evaluate("async () => (await (await fetch('/api/stats')).json()).forward_passes") == passes
            page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)

            # another saliency method: its map replaces the CAM, with its cost beside it; no new forward pass of the CAM head
            assert page.locator("#method option").all_inner_texts() == ["CAM (eq. 4)", "Grad-CAM", "RISE (256 masks)",
                                                                        "Excitation Backprop", "contrastive EB"]
            for method, label in (("gradcam", "Grad-CAM ("), ("rise", "RISE (")):
                cam_picture = overlay.screenshot()
                page.select_option("#method", method)
                page.wait_for_function(f"(el) => el.textContent.startsWith({label!r})", arg=caption.element_handle())
                page.wait_for_function("(img) => img.complete && img.naturalWidth > 0 && img.src.includes('method=')",
                                       arg=overlay.element_handle())
                page.wait_for_function("document.querySelector('#status').textContent === 'ready'")
                assert " ms" in caption.inner_text() and page.locator("#error").is_hidden()
                assert np.abs(_pixels(overlay.screenshot()) - _pixels(cam_picture)).mean() > 1.0, f"{method} drew the same map"
            assert page.evaluate("async () => (await (await fetch('/api/stats')).json()).forward_passes") == passes
            page.screenshot(path=SCREENSHOT_METHOD, full_page=True)
            page.select_option("#method", "cam")
            page.wait_for_function("(el) => el.textContent.startsWith('CAM (eq. 4) (')", arg=caption.element_handle())
            page.wait_for_function("document.querySelector('#status').textContent === 'ready'")

            page.set_input_files("#file", str(tmp_path / "not_an_image.png"))
            page.wait_for_selector("#error:not([hidden])")
            assert "The upload is not an image" in page.inner_text("#error")
            page.screenshot(path=str(tmp_path / "serve_error.png"))

            # drag and drop an image: the server kept serving and the error line clears
            page.evaluate(
                """async (url) => {
                    const blob = await (await fetch(url)).blob();
                    const transfer = new DataTransfer();
                    transfer.items.add(new File([blob], 'dropped.png', {type: blob.type}));
                    document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true}));
                }""",
                "/api/examples/1",
            )
            page.wait_for_function("document.querySelectorAll('.panel .bars li').length === 10")
            assert page.locator("#error").is_hidden()
        finally:
            browser.close()
    keep = os.environ.get("MINDGAP_SCREENSHOT_DIR")
    if keep:
        for name in ("serve.png", "serve_error.png"):
            shutil.copy(tmp_path / name, os.path.join(keep, name))
    assert (tmp_path / "serve.png").stat().st_size > 10_000
