"""Watching must not slow the run: a tiny run's steps/s with 0, 1 and 8 headless-Chromium tabs open on its run
page, the app server's CPU per tab, and how far behind the notebook each tab's loss chart is. Everything runs on
this machine (the run, the app server and the browser share its cores), measured in this run; the 0-tab figure is
measured before and after the tabs and averaged, since the machine is shared and noisy.

    .venv/bin/python bench/viewers.py [--seconds 20] [--tabs 1,8]
Goal: 1 tab >= 0.9 x and 8 tabs >= 0.7 x the steps/s with none, every tab within 2 s of the notebook.
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
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import preset, with_overrides  # noqa: E402
from lab_notes import Notebook  # noqa: E402

LAST_STEP_ON_SCREEN = """() => {
  const plot = document.querySelector('.js-plotly-plot');
  if (!plot || !plot._fullData) return 0;
  return Math.max(0, ...plot._fullData.map(trace => trace.x && trace.x.length ? trace.x[trace.x.length - 1] : 0));
}"""
RUN = ["data.image_size=16", "data.samples_per_class=12", "data.n_way=3", "data.k_shot=2", "data.q_queries=2",
       "model.encoder.embed_dim=32", "model.encoder.depth=1", "model.encoder.num_heads=2",
       "model.decoders.embed_dim=32", "model.decoders.num_heads=2", "schedule.episodes=10000000",
       "schedule.eval_every=1000000", "schedule.image_every=1000000", "schedule.checkpoint_every=1000000",
       "schedule.histogram_every=1000000", "schedule.final_eval_episodes=0"]


def wait_for(predicate, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def latest_step(book: Notebook, run_id: int) -> int:
    return int(book.latest_metrics(run_id).get("loss/total", (0,))[0])


def measure(book: Notebook, run_id: int, server: psutil.Process, seconds: float) -> tuple[float, float]:
    """(steps/s of the run, the server's CPU in cores) over `seconds`."""
    first, cpu, started = latest_step(book, run_id), server.cpu_times(), time.monotonic()
    time.sleep(seconds)
    last, cpu_after, elapsed = latest_step(book, run_id), server.cpu_times(), time.monotonic() - started
    return (last - first) / elapsed, (sum(cpu_after[:2]) - sum(cpu[:2])) / elapsed


def lags(book: Notebook, run_id: int, pages) -> list[float]:
    """For each tab: seconds until it shows the step the notebook holds now."""
    target, asked = latest_step(book, run_id), time.monotonic()
    found: dict[int, float] = {}
    while len(found) < len(pages) and time.monotonic() - asked < 30:
        for i, page in enumerate(pages):
            if i not in found and page.evaluate(LAST_STEP_ON_SCREEN) >= target:
                found[i] = time.monotonic() - asked
        time.sleep(0.02)
    return [found.get(i, float("inf")) for i in range(len(pages))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--tabs", default="1,8")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp())
    url = f"sqlite:///{folder / 'notebook.db'}"
    port = free_port()
    env = {**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_RUNS_DIR": str(folder / "runs")}
    processes = []
    try:
        with Notebook(url) as book:
            run_id = book.create_run(with_overrides(preset("tiny"), RUN).model_dump(mode="json"), name="watched",
                                     preset="tiny")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "engine", "worker", "--db", url, "--runs-dir", str(folder / "runs")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"), "--server.port",
                 str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
            server = psutil.Process(processes[-1].pid)
            wait_for(lambda: _healthy(port), 90, "the app server")
            wait_for(lambda: latest_step(book, run_id) > 100, 120, "the run to train")
            time.sleep(3)  # past the first steps' warm-up

            results: dict[int, tuple[float, float]] = {0: measure(book, run_id, server, args.seconds)}
            print(f"0 tabs: {results[0][0]:.1f} steps/s, server {100 * results[0][1]:.0f} % of a core", flush=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                     args=["--no-sandbox", "--disable-gpu"])
                pages, report = [], []
                for tabs in sorted(int(t) for t in args.tabs.split(",")):
                    while len(pages) < tabs:
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        page.goto(f"http://127.0.0.1:{port}/run?run={run_id}")
                        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
                        pages.append(page)
                    time.sleep(3)
                    results[tabs] = measure(book, run_id, server, args.seconds)
                    behind = lags(book, run_id, pages)
                    steps_behind = latest_step(book, run_id) - pages[-1].evaluate(LAST_STEP_ON_SCREEN)
                    report.append((tabs, behind, steps_behind))
                    print(f"{tabs} tab(s): {results[tabs][0]:.1f} steps/s, server {100 * results[tabs][1]:.0f} % of a "
                          f"core; slowest tab {max(behind):.2f} s behind the notebook, the last tab "
                          f"{steps_behind} steps behind", flush=True)
                browser.close()
            after = measure(book, run_id, server, args.seconds)
            print(f"0 tabs again: {after[0]:.1f} steps/s", flush=True)
            baseline = statistics.mean([results[0][0], after[0]])
            idle_cpu = statistics.mean([results[0][1], after[1]])
            print(f"\nbaseline (no tab, before and after): {baseline:.1f} steps/s")
            for tabs, behind, steps_behind in report:
                per_tab = (results[tabs][1] - idle_cpu) / tabs
                print(f"{tabs} tab(s): {results[tabs][0] / baseline:.2f} x the steps/s with none; server "
                      f"{100 * per_tab:.1f} % of a core per tab; every tab within {max(behind):.2f} s of the "
                      f"notebook; the last tab {steps_behind} steps behind")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
