"""The real app in a real browser: `streamlit run` on a free port with a temporary notebook, driven by Playwright
through Debian's Chromium (Playwright's own browser download is not used)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab_notes import Notebook
from tests.helpers import missing_service, server_is_healthy, stop_processes, wait_for, workers_serving

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{folder / 'notebook.db'}"
    port = free_port()
    env = {**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_RUNS_DIR": str(folder / "runs"), "LAB_START_WORKER": "1"}
    log = open(folder / "streamlit.log", "wb")
    server = subprocess.Popen(
        # No --server.address: the address, headless mode and the rest come from .streamlit/config.toml, as for
        # a user who runs the README's command.
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), "--server.port",
         str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    try:
        wait_for(lambda: server_is_healthy(port), 90, "streamlit's health endpoint")
        yield {"base": f"http://127.0.0.1:{port}", "db": url, "folder": folder, "port": port, "pid": server.pid}
    finally:
        stop_processes([server], timeout=30)
        log.close()
        with Notebook(url) as notebook:  # the app started a detached worker: stop it like Ctrl-C would
            for worker in notebook.live_workers(60):
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not notebook.live_workers(60), 60, "the app's worker to exit")
        # A worker the app spawned but that had not yet registered (still importing torch on a loaded machine) is
        # not in live_workers: find it by its runs folder, so none outlives the module.
        runs = (folder / "runs").resolve()
        for pid in workers_serving(runs):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        wait_for(lambda: not workers_serving(runs), 60, "the app's unregistered worker to exit")


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        missing_service("browser tests: Debian's chromium is not installed (apt-get install chromium; "
                        "tests/services.sh installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def shoot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
