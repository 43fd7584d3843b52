"""A newcomer's first Launch: the app starts its worker (and its warm launcher) when it starts, so the first
Launch on a fresh notebook shows its first point as soon as the second one does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from lab_notes import Notebook
from tests.e2e.conftest import ROOT, free_port
from tests.e2e.page_scripts import POINTS_IN_FIRST_CHART
from tests.helpers import server_is_healthy, stop_processes, wait_for

PRESET = "2022-12-14-normalized-infonce-2d"


@pytest.fixture
def fresh_app_server(tmp_path):
    """A server of its own on an empty notebook: nothing has started a worker before the app does."""
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    port = free_port()
    env = {**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_RUNS_DIR": str(tmp_path / "runs"), "LAB_START_WORKER": "1"}
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
                               "--server.port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: server_is_healthy(port), 90, "streamlit's health endpoint")
        yield {"base": f"http://127.0.0.1:{port}", "db": url, "folder": tmp_path}
    finally:
        stop_processes([server], timeout=30)
        log.close()
        with Notebook(url) as notebook:
            for worker in notebook.live_workers(60):
                try:
                    os.kill(worker.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not notebook.live_workers(60), 60, "the app's worker to exit")


def launch_from_home(app, page) -> float:
    """Seconds from the Launch click on the home page to the run's first loss point on screen; the run is then
    stopped and its slot freed."""
    from engine import jobs

    page.goto(app["base"])
    launch = page.locator("[data-testid='stHorizontalBlock']", has_text=PRESET).last.get_by_role(
        "button", name="🚀 Launch")
    launch.wait_for()
    clicked = time.monotonic()
    launch.click()
    page.wait_for_url(re.compile(r".*/run\?run=\d+"))
    wait_for(lambda: page.evaluate(POINTS_IN_FIRST_CHART), 60, "the first loss point on screen", every=0.02)
    seconds = time.monotonic() - clicked
    with Notebook(app["db"]) as notebook:
        run_id = int(re.search(r"run=(\d+)", page.url).group(1))
        jobs.request_stop(notebook, run_id)
        wait_for(lambda: notebook.get_run(run_id).exit_code is not None, 60, "the run to stop and its slot to be free")
    return seconds


def seconds_to_import_torch() -> float:
    """What any cold start pays at least (a worker, or a run process not forked from a warm launcher), on this
    machine as loaded as it is now."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.monotonic() - started


def test_the_first_launch_on_a_fresh_notebook_is_as_fast_as_the_second(fresh_app_server, page):
    """The first Launch pays no cold start: it is slower than the second by less than half of a bare torch import,
    measured beside it (a ratio of the two launches alone failed in CI on a loaded machine: 4.4 s against 2.2 s,
    one sample each, with a cold start costing more than the whole difference)."""
    page.goto(fresh_app_server["base"])
    sidebar = page.locator("[data-testid='stSidebar']")
    sidebar.get_by_text("Worker warming up").wait_for()  # the app started its worker as it started
    wait_for(lambda: sidebar.get_by_text("Worker warming up").count() == 0, 120, "the worker to warm up")
    first = launch_from_home(fresh_app_server, page)
    second = launch_from_home(fresh_app_server, page)
    cold = seconds_to_import_torch()
    print(f"first Launch → first point {first:.2f} s; second Launch {second:.2f} s; import torch {cold:.2f} s")
    assert first <= max(2.0, second + cold / 2), "the first Launch waited for something to start cold"
