"""Draw docs/serve.png: `mindgap serve` with the shipped models in Debian's headless Chromium (Playwright), one example
image uploaded, Grad-CAM chosen in the method selector.  Run from the checkout's root: python docs/screenshot.py"""

import os
import socket
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's mindgap, not another installed one
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main(path=os.path.join(ROOT, "docs", "serve.png"), image=os.path.join(ROOT, "docs", "examples", "seven_501.jpg")):
    import uvicorn
    from playwright.sync_api import sync_playwright

    from mindgap import shipped
    from mindgap.cli import load_mindgap_model
    from mindgap.serve import create_app

    models = {name: load_mindgap_model(name, "serve") for name in shipped.names_of_kind("image")}
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(models), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(300_000)  # a shared machine: the first forward passes may wait for a core
            page.goto(f"http://127.0.0.1:{listener.getsockname()[1]}/")
            page.wait_for_function("document.querySelector('#status').textContent === 'choose an image'")
            page.set_input_files("#file", image)
            page.wait_for_function("document.querySelectorAll('.panel .bars li').length === 10")
            page.wait_for_function("document.querySelector('#status').textContent === 'ready'")
            page.select_option("#method", "gradcam")
            page.wait_for_function("document.querySelector('.panel figcaption').textContent.startsWith('Grad-CAM')")
            page.wait_for_function("document.querySelector('#status').textContent === 'ready'")
            page.wait_for_function("[...document.querySelectorAll('img.overlay')].every(img => img.complete && "
                                   "img.naturalWidth > 0 && img.src.includes('method='))")
            page.screenshot(path=path, full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(15)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
