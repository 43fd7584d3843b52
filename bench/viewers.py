"""Watching must not slow the run: a tiny run's steps/s with 0, 1 and 8 headless-Chromium tabs open on its run
page, the app server's CPU per tab, and how far behind the notebook each tab's loss chart is. Everything runs on
this machine (the run, the app server and the browser share its cores), measured in this run; the 0-tab figure is
measured before and after the tabs and averaged, since the machine is shared and noisy.

    .venv/bin/python bench/viewers.py [--seconds 20] [--tabs 1,8]
Goal: 1 tab >= 0.9 x and 8 tabs >= 0.7 x the steps/s with none, every tab within 2 s of the notebook.
Headless Chromium shows every tab as in front; `8b` hides all but one, as a browser window does with its tabs
(a background tab is redrawn every 30 s, and at once when brought back: its catch-up time is what is reported).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.presets import preset  # noqa: E402
from lab_notes import Notebook  # noqa: E402
from tests.e2e.page_scripts import (HIDE_THE_TAB, LAST_STEP_IN_FIRST_CHART, LIVE_CHART,  # noqa: E402
                                    RECORD_WHEN_STEPS_ARE_SHOWN, SHOW_THE_TAB, WHEN_STEP_WAS_SHOWN)
from tests.helpers import server_is_healthy, stop_processes, tiny, wait_for  # noqa: E402

RUN = ["schedule.episodes=10000000", "schedule.eval_every=1000000", "schedule.image_every=1000000",
       "schedule.checkpoint_every=1000000", "schedule.histogram_every=1000000", "schedule.final_eval_episodes=0"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_step(notebook: Notebook, run_id: int) -> int:
    return int(notebook.latest_metrics(run_id).get("loss/total", (0,))[0])


def browser_cpu() -> float:
    """CPU seconds used so far by the Chromium processes this bench started (children of this process)."""
    total = 0.0
    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" in process.name():
                total += sum(process.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def measure(notebook: Notebook, run_id: int, server: psutil.Process, seconds: float) -> tuple[float, float, float]:
    """(steps/s of the run, the server's CPU in cores, the browser's CPU in cores) over `seconds`."""
    first, cpu, browser, started = latest_step(notebook, run_id), server.cpu_times(), browser_cpu(), time.monotonic()
    time.sleep(seconds)
    last, cpu_after, elapsed = latest_step(notebook, run_id), server.cpu_times(), time.monotonic() - started
    return ((last - first) / elapsed, (sum(cpu_after[:2]) - sum(cpu[:2])) / elapsed,
            (browser_cpu() - browser) / elapsed)


def lags(notebook: Notebook, run_id: int, pages) -> list[float]:
    """For each tab: seconds until it showed the step the notebook holds now (as the tab itself noted it)."""
    target, asked = latest_step(notebook, run_id), time.time()
    shown: dict[int, float] = {}
    while len(shown) < len(pages) and time.time() - asked < 30:
        for i, page in enumerate(pages):
            if i not in shown and (at := page.evaluate(WHEN_STEP_WAS_SHOWN, target)) is not None:
                shown[i] = max(0.0, at / 1000 - asked)
        time.sleep(0.2)
    late = {i: page.evaluate(LAST_STEP_IN_FIRST_CHART) for i, page in enumerate(pages) if i not in shown}
    if late:
        print(f"  tabs that did not reach step {target} within 30 s (step on screen): {late}", flush=True)
    return [shown.get(i, float("inf")) for i in range(len(pages))]


def catch_up(notebook: Notebook, run_id: int, pages) -> list[float]:
    """Each background tab brought to the front in turn: seconds until it shows the step the notebook holds then."""
    seconds = []
    for page in pages:
        page.evaluate(SHOW_THE_TAB)
        seconds.append(lags(notebook, run_id, [page])[0])
        page.evaluate(HIDE_THE_TAB)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tabs", default="1,8,8b", help="tab counts to measure; 8b: 8 tabs, all but one in the "
                                                         "background (as in one browser window)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    (folder / "runs").mkdir()  # the artifact root: a worker checks it is there before it starts
    url = f"sqlite:///{folder / 'notebook.db'}"
    port = free_port()
    env = {**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_ARTIFACT_ROOT": str(folder / "runs"), "LAB_START_WORKER": "0"}
    processes = []
    try:
        with Notebook(url) as notebook:
            run_id = notebook.create_run(tiny(preset("tiny"), *RUN).model_dump(mode="json"), name="watched",
                                     preset="tiny")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "engine", "worker", "--db", url, "--runs-dir", str(folder / "runs")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), "--server.port",
                 str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            server = psutil.Process(processes[-1].pid)
            wait_for(lambda: server_is_healthy(port), 90, "the app server")
            wait_for(lambda: latest_step(notebook, run_id) > 100, 120, "the run to train")
            time.sleep(3)  # past the first steps' warm-up

            none = [measure(notebook, run_id, server, args.seconds)]
            print(f"0 tabs: {none[0][0]:.1f} steps/s, server {100 * none[0][1]:.0f} % of a core", flush=True)
            report = []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                     args=["--no-sandbox", "--disable-gpu"])
                pages = []
                for phase in args.tabs.split(","):
                    tabs, background = int(phase.rstrip("b")), phase.endswith("b")
                    while len(pages) < tabs:
                        for earlier in pages if background else ():  # a new tab sends the others to the back
                            earlier.evaluate(HIDE_THE_TAB)
                        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                        page.goto(f"http://127.0.0.1:{port}/run?run={run_id}")
                        page.locator(LIVE_CHART).first.wait_for(timeout=60_000)
                        page.evaluate(RECORD_WHEN_STEPS_ARE_SHOWN)
                        pages.append(page)
                    for page in pages[:-1]:
                        page.evaluate(HIDE_THE_TAB if background else SHOW_THE_TAB)
                    time.sleep(10)  # the tabs just opened, hidden or shown have been drawn
                    steps, cpu, browser_cores = measure(notebook, run_id, server, args.seconds)
                    behind = []
                    for _ in range(3 if background else 5):  # the worst of a few asks, a second apart
                        behind += lags(notebook, run_id, pages[-1:] if background else pages)
                        time.sleep(1)
                    if background:
                        behind += catch_up(notebook, run_id, pages[:-1])
                    name = f"{tabs} tabs, {tabs - 1} in the background" if background else f"{tabs} tab(s)"
                    report.append((name, tabs, steps, cpu, max(behind)))
                    print(f"{name}: {steps:.1f} steps/s, server {100 * cpu:.0f} % of a core, browser "
                          f"{100 * browser_cores:.0f} %; every tab within {max(behind):.2f} s of the notebook"
                          + (" (a background tab: once brought to the front)" if background else ""), flush=True)
                browser.close()
            time.sleep(5)  # the server ends the closed tabs' sessions
            none.append(measure(notebook, run_id, server, args.seconds))
            print(f"0 tabs again: {none[1][0]:.1f} steps/s", flush=True)
            baseline = statistics.mean([n[0] for n in none])
            idle_cpu = statistics.mean([n[1] for n in none])
            print(f"\nbaseline (no tab, before and after): {baseline:.1f} steps/s")
            for name, tabs, steps, cpu, slowest in report:
                print(f"{name}: {steps / baseline:.2f} x the steps/s with none; server "
                      f"{100 * (cpu - idle_cpu) / tabs:.1f} % of a core per tab; every tab within {slowest:.2f} s "
                      f"of the notebook")
    finally:
        stop_processes(processes)
        shutil.rmtree(folder, ignore_errors=True)



if __name__ == "__main__":
    main()
