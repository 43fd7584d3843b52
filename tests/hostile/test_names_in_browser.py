"""The hostile names in the real app in Chromium, one browser session over Home, Run, Runs, Compare and Sweep: each
page shows the names as their characters; no script they carry runs (it would set `window.PWNED`), no iframe
with a `srcdoc` and no image from the foreign host is in the page, and the browser asks nothing of any host but
the app's. A last step puts the same names into the page as HTML by hand, to show these checks see script and
foreign requests when there are some."""

from __future__ import annotations

from urllib.parse import urlsplit

from lab_notes import Notebook
from lab_notes.sweeps import SweepRun

from tests.e2e.conftest import app_server, browser, page, shoot  # noqa: F401 - fixtures: the app in Chromium
from tests.helpers import wait_for
from app.literal import WORD_JOINER
from tests.hostile.names import (BOLD_AND_IMAGE_NAME, FOREIGN, IMG_TAG_NAME, METRIC_KEY, NAMES, SCRIPT_NAME,
                                 STREAMLIT_SYNTAX_NAME)

HERE = "this browser test"  # runs pinned to this host: the app's own worker leaves them to the test

PAGE_IS_CLEAN = """() => {
  const frames = [window, ...Array.from(window.frames)];
  return {
    pwned: frames.some((w) => { try { return w.PWNED !== undefined; } catch (e) { return false; } }),
    srcdoc: document.querySelectorAll('iframe[srcdoc]').length,
    foreign_images: Array.from(document.images).filter((i) => i.src.includes('%s')).length,
  };
}""" % FOREIGN


def seed(url: str) -> tuple[dict[str, int], int]:
    """A finished run named each hostile name and a finished sweep named like the script, its runs too, every
    run with a loss, an accuracy and the hostile metric key. Returns ({name: run id}, sweep id)."""
    from engine.presets import PRESETS

    config = PRESETS["tiny"].model_dump(mode="json")
    with Notebook(url) as notebook:
        runs = {name: notebook.create_run(config, name=name, preset="tiny", pinned_host=HERE)
                for name in (*NAMES, STREAMLIT_SYNTAX_NAME)}
        sweep = notebook.create_sweep(name=SCRIPT_NAME, preset="tiny", mode="grid", fields={"optim.lr": [0.001, 0.01]},
                                  runs=[SweepRun(SCRIPT_NAME, config, pinned_host=HERE),
                                        SweepRun(IMG_TAG_NAME, config, pinned_host=HERE)])
        while (attempt := notebook.claim_next_run(HERE, host=HERE)) is not None:
            for step in range(1, 6):
                notebook.log_metrics(attempt.run_id, step, {"loss/total": 1.0 / step, METRIC_KEY: 0.1 * step,
                                                        "eval/acc/prototype": 0.1 * step + 0.001 * attempt.run_id},
                                 attempt=attempt)  # the later run is the better
            notebook.flush()
            notebook.finish_attempt(attempt, "completed")
    return runs, sweep


def test_hostile_names_render_as_text_on_every_page_with_no_script_and_no_foreign_request(app_server, page):
    runs, sweep = seed(app_server["db"])
    app_host = urlsplit(app_server["base"]).netloc
    foreign = []

    def count_if_foreign(url: str) -> None:
        """A request that leaves the browser for another host (a `blob:` of the app's is its own; `data:` never
        leaves the browser)."""
        parts = urlsplit(url.removeprefix("blob:"))
        if parts.scheme not in ("data", "about") and parts.netloc != app_host:
            foreign.append(url)

    page.on("request", lambda request: count_if_foreign(request.url))

    def shows_no_markup(where: str) -> None:
        state = page.evaluate(PAGE_IS_CLEAN)
        assert state == {"pwned": False, "srcdoc": 0, "foreign_images": 0}, (where, state)
        shoot(page, f"hostile-names-{where}")

    base = app_server["base"]
    page.goto(base)
    page.get_by_role("heading", name="Lab notebook").wait_for()
    for name in NAMES:  # the bold name's asterisks are on screen: no bold, no image
        page.get_by_text(name).first.wait_for()
    syntax = page.locator("[data-testid='stMarkdownContainer']", has_text="$x^2$").first
    syntax.wait_for()  # Streamlit's own syntax as typed: no icon, colour, maths or strikethrough
    assert STREAMLIT_SYNTAX_NAME in syntax.inner_text().replace(WORD_JOINER, "")
    shows_no_markup("home")

    run_id = runs[SCRIPT_NAME]
    page.goto(f"{base}/run?run={run_id}")
    page.get_by_role("heading", name=f"Run {run_id} — {SCRIPT_NAME}").wait_for()
    page.locator(".live-chart", has_text=METRIC_KEY).wait_for()  # the key as the live chart's title
    shows_no_markup("run")

    page.goto(f"{base}/runs")
    page.get_by_role("heading", name="Runs").wait_for()
    for name in NAMES:  # the table draws on a canvas; its cells are in the page as text too
        page.get_by_text(name).first.wait_for(state="attached")
    shows_no_markup("runs")

    page.goto(f"{base}/compare?runs={','.join(str(runs[name]) for name in NAMES)}")
    page.get_by_role("heading", name="Compare runs").wait_for()
    page.get_by_text(f"{runs[BOLD_AND_IMAGE_NAME]} · {BOLD_AND_IMAGE_NAME}").first.wait_for()  # a chosen run
    page.locator(".js-plotly-plot", has_text=METRIC_KEY).first.wait_for()  # Plotly's title as typed
    page.locator(".js-plotly-plot", has_text=f"{run_id} · {SCRIPT_NAME}").first.wait_for()  # and its legend
    shows_no_markup("compare")

    page.goto(f"{base}/sweep?sweep={sweep}")
    page.get_by_role("heading", name=f"Sweep {sweep} — {SCRIPT_NAME}").wait_for()
    page.get_by_text("Best by eval/acc/prototype").wait_for()  # its best run by name, as a link
    page.get_by_role("link", name=IMG_TAG_NAME).wait_for()
    shows_no_markup("sweep")
    assert foreign == []

    # The same names as HTML, put in by hand: the script runs and the image is asked for, and both are seen.
    page.evaluate("(names) => { const d = document.createElement('div'); d.innerHTML = names;"
                  " document.body.appendChild(d); }", SCRIPT_NAME + IMG_TAG_NAME)
    wait_for(lambda: page.evaluate(PAGE_IS_CLEAN)["pwned"], 10, "the hand-placed script to run")
    wait_for(lambda: foreign, 10, "the hand-placed image to be asked for")
    assert all(FOREIGN in url for url in foreign)
