"""A search's Sweep page in a real browser, after a real search on the negatives-only InfoNCE preset (tiny size)
whose trials ran in this process while another thread stepped the search as the worker's loop does, so some
trials were pruned mid-run. Screenshot: test-output/screenshots/sweep-search.png (app/screenshots/ keeps a copy)."""

from __future__ import annotations

import re
import threading

from engine.run_process import run_one
from engine.search import advance_searches, submit_search
from engine.search_space import search_settings
from lab_notes import Notebook
from tests.e2e.conftest import shoot
from tests.engine.test_search import NEGATIVES, small
from tests.helpers import wait_for


def searched(url: str, runs_dir) -> int:
    """A finished search of 10 trials (median pruning), its trials run one at a time; its sweep id."""
    with Notebook(url) as notebook:
        cfg = small(NEGATIVES, "schedule.episodes=80", "schedule.eval_every=10")
        settings = search_settings(cfg, ["optim.lr=1e-4:1e-1:log", "loss.temperature=0.05:1"],
                                   "eval/prototype:max", trials=10, parallel=1, pruner="median", seed=2)
        sweep_id = submit_search(notebook, cfg, settings, name="lr and τ until it stops diverging", preset=NEGATIVES)
        stop = threading.Event()

        def step_searches() -> None:  # the worker's hook, beside the running trial
            while not stop.wait(0.2):
                advance_searches(notebook)

        stepper = threading.Thread(target=step_searches, daemon=True)
        stepper.start()
        try:
            while not notebook.get_search(sweep_id).settings.get("done"):
                attempt = notebook.claim_next_run("e2e")
                if attempt is not None:
                    (runs_dir / str(attempt.run_id)).mkdir(parents=True, exist_ok=True)  # as the worker does
                    run_one(url, attempt, runs_dir)
                else:
                    stop.wait(0.2)
        finally:
            stop.set()
            stepper.join()
        return sweep_id


def test_the_sweep_page_of_a_real_search(app_server, page):
    sweep_id = searched(app_server["db"], app_server["folder"] / "runs")
    page.set_viewport_size({"width": 1400, "height": 1900})  # the trials table too, below the figures
    page.goto(f"{app_server['base']}/sweep?sweep={sweep_id}")
    page.get_by_role("heading", name=re.compile(rf"Search {sweep_id} — lr and τ")).wait_for()
    page.get_by_text(re.compile(r"Best: trial \d+")).first.wait_for()
    try:  # best so far, importances, parallel coordinates: three Plotly figures drawn
        wait_for(lambda: page.locator(".js-plotly-plot").count() >= 3, 60, "the search's three figures")
    finally:
        page.wait_for_timeout(500)  # the last chart's transition
        shoot(page, "sweep-search")
