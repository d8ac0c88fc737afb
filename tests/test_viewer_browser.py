"""The heatmap viewer in a real JupyterLab, driven by headless Chromium (Debian's `chromium`, through
Playwright with `executable_path`; nothing is downloaded). `expaware view` opens the viewer notebook on the small
test runs folder and prints its address; the test runs it, moves the top-k slider one step and the test-image
slider one step, and checks that the rendered metrics and image changed each time.
A screenshot is saved in the test's temporary folder (its path is printed).

Skipped when Chromium or Playwright is missing, unless EXPAWARE_REQUIRE_BROWSER=1 (CI sets it)."""
import json, os, shutil, socket, subprocess, sys, time
from pathlib import Path

import pytest

from expaware_nb.cli import free_port

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

required = os.environ.get("EXPAWARE_REQUIRE_BROWSER") == "1"
if not required and (CHROMIUM is None or sync_playwright is None):
    pytest.skip("headless Chromium or Playwright not installed", allow_module_level=True)

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync",
         "--no-first-run", "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture
def lab(tmp_path):
    "`expaware view` on the small test runs folder: a JupyterLab server on localhost; yields the address it prints."
    from expaware_nb.testing import fixture_runs
    home = tmp_path / "home"
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    quiet = {"fetchNews": "false", "checkForUpdates": False}
    (settings / "notification.jupyterlab-settings").write_text(json.dumps(quiet))
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "expaware_nb.cli", "view", str(fixture_runs()), "--port", str(port),
                               "--no-browser", "--folder", str(tmp_path / "view")],
                              env=env, stdout=subprocess.PIPE, text=True, stderr=open(tmp_path / "lab.log", "w"))
    lines = [server.stdout.readline() for _ in range(2)]              # the command prints the address first
    url = lines[1].strip()
    assert lines[0].startswith("the heatmap viewer on ") and url.startswith(f"http://127.0.0.1:{port}/lab/tree/"), lines
    deadline = time.time() + 120                       # the server listening is an event; the deadline only bounds a hang
    while server.poll() is None and time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1): break
        except OSError: time.sleep(.3)
    assert server.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
    yield url
    server.terminate()
    try: server.wait(timeout=20)
    except subprocess.TimeoutExpired: server.kill()


def test_viewer_slider_changes_the_rendered_output(lab, tmp_path):
    assert CHROMIUM is not None and sync_playwright is not None, "chromium and playwright are required here"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)   # the kernel is connected
        page.locator("li.lm-MenuBar-item", has_text="Run").click()
        page.locator("li.lm-Menu-item[data-command=\"runmenu:run-all\"]").click()
        topk = page.locator(".widget-slider", has_text="top-k")
        topk.wait_for(timeout=90_000)
        info = page.locator(".widget-html-content", has_text="cells selected")
        info.wait_for(timeout=60_000)
        image = page.locator(".jp-OutputArea-output img").last
        image.wait_for(timeout=60_000)
        before_text, before_image = info.inner_text(), image.get_attribute("src")
        assert "k = 0.50" in before_text
        topk.locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => [...document.querySelectorAll('.widget-html-content')].some(e => "
                               "e.innerText.includes('k = 0.55'))",
                               timeout=30_000)
        page.wait_for_function("src => { const imgs = document.querySelectorAll('.jp-OutputArea-output img');"
                               " return imgs.length && imgs[imgs.length - 1].src !== src; }", arg=before_image,
                               timeout=30_000)
        after_text = info.inner_text()
        shown = image.get_attribute("src")
        page.locator(".widget-slider", has_text="test image").locator(".noUi-handle").focus()
        page.keyboard.press("ArrowRight")                                    # the next image: another heatmap
        page.wait_for_function("src => { const imgs = document.querySelectorAll('.jp-OutputArea-output img');"
                               " return imgs.length && imgs[imgs.length - 1].src !== src; }", arg=shown,
                               timeout=30_000)
        next_text = info.inner_text()
        page.screenshot(path=str(tmp_path / "viewer.png"), full_page=True)
        print(f"screenshot: {tmp_path / 'viewer.png'}")
        browser.close()
    assert after_text != before_text and "k = 0.55" in after_text
    image_id = lambda text: text.split("image ", 1)[1].split(",")[0]
    assert image_id(next_text) != image_id(after_text)
