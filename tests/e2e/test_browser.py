"""A researcher's path through the app in Chromium: launch the tiny preset, watch the loss chart grow, stop the
run, pin the chart to a new note, find it in the journal, export the journal. Screenshots go to
test-output/screenshots/."""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path

from lab_notes import Notebook, Refused

from tests.e2e.conftest import shoot
from tests.e2e.page_scripts import (HIDE_THE_TAB, LAST_STEP_IN_FIRST_CHART, MOUNT_A_LIVE_CHART, POINTS_IN_FIRST_CHART,
                                    SHOW_THE_TAB)
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


def test_launch_watch_stop_pin_and_export(app_server, page, tmp_path):
    base = app_server["base"]
    page.goto(f"{base}/new")
    page.get_by_role("heading", name="New run").wait_for()
    page.get_by_text("schedule —").click()
    episodes = page.get_by_label("Episodes", exact=True)
    episodes.fill("100000")
    episodes.press("Enter")
    page.get_by_label("Run name").fill("browser run")
    page.get_by_label("Run name").press("Enter")
    shoot(page, "1-new-run")
    page.get_by_role("button", name="🚀 Launch").click()
    page.wait_for_url(re.compile(r".*/run\?run=\d+"))
    page.get_by_role("heading", name=re.compile(r"Run \d+ — browser run")).wait_for()

    first = wait_for(lambda: page.evaluate(POINTS_IN_FIRST_CHART), 120, "the loss chart's first points")
    later = wait_for(lambda: (n := page.evaluate(POINTS_IN_FIRST_CHART)) > first and n, 30,
                     "the loss chart to gain points while the run trains")
    assert later > first
    run_id = int(re.search(r"run=(\d+)", page.url).group(1))
    # The chart's own cadence on this machine now is the baseline: the mean time between the updates it draws,
    # over five (one interval alone varies 0.2-1.0 s: a resend's answer can follow its tick closely). A point the
    # notebook holds is on screen within two of those, however loaded CI is, and the test's own polls of the page
    # may add most of a third. Three points are timed, and their median is held to that.
    def next_update() -> float:
        shown = page.evaluate(LAST_STEP_IN_FIRST_CHART)
        wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART) > shown, 30, "the chart's next update", every=0.05)
        return time.monotonic()

    updates = [next_update() for _ in range(6)]
    cadence = (updates[-1] - updates[0]) / (len(updates) - 1)
    with Notebook(app_server["db"]) as notebook:
        latencies = [seconds_to_show_the_latest_step(page, notebook, run_id) for _ in range(3)]
    latency = sorted(latencies)[1]
    print(f"flushed steps on screen after {', '.join(f'{x:.2f}' for x in latencies)} s "
          f"(the chart updates every {cadence:.2f} s on average)")
    assert latency < 3 * cadence
    shoot(page, "2-run-live")

    run_url = page.url
    page.goto(base)  # the home page: the running run with its progress bar, ETA and sparkline
    page.get_by_role("heading", name="Lab notebook").wait_for()
    progress = page.get_by_text(re.compile(r"step [\d,]+ / 100,000 · ETA")).first
    progress.wait_for()
    progress.scroll_into_view_if_needed()
    shoot(page, "2b-home-progress")
    page.goto(run_url)
    page.get_by_role("heading", name=re.compile(r"Run \d+ — browser run")).wait_for()
    page.get_by_role("button", name="⏹ Stop").click()
    page.get_by_text("stopped", exact=True).wait_for(timeout=30_000)
    shoot(page, "3-run-stopped")

    page.get_by_role("button", name="📌 Pin to a note").first.click()
    page.get_by_role("button", name="Pin", exact=True).click()
    page.get_by_text(re.compile(r"Pinned to note \d+")).wait_for()

    page.goto(f"{base}/journal")
    page.get_by_role("heading", name="Journal").wait_for()
    page.get_by_text(re.compile(r"Run \d+: losses")).first.wait_for()
    page.locator("[data-testid='stImage'] img").first.wait_for()  # the pinned chart, drawn as a PNG
    shoot(page, "4-journal")

    page.get_by_text("⇅ Import / export").click()
    page.get_by_role("button", name="Prepare export").click()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="⬇ Download journal.zip").click()
    archive = tmp_path / "journal.zip"
    download_info.value.save_as(archive)
    with zipfile.ZipFile(archive) as exported:
        names = exported.namelist()
        assert "journal.md" in names and any(re.fullmatch(r"pic/run\d+-losses\.png", n) for n in names)
        assert re.search(r"!\[.*\]\(\./pic/run\d+-losses\.png\)", exported.read("journal.md").decode())


def test_one_click_from_the_home_page_to_a_first_point_on_screen_within_2_s(app_server, page):
    from engine import jobs
    from engine.presets import PRESETS
    from engine.jobs import ensure_worker

    preset = "2022-12-14-normalized-infonce-2d"
    worker_log = app_server["folder"] / "runs" / "worker.log"
    with Notebook(app_server["db"]) as notebook:
        free_the_workers_slot(notebook)  # the worker's one slot is this run's
        # As once the notebook has been used: a run with a loss sparkline on the home page (so the charts' code is
        # loaded), a worker up and its launcher warm (the first Launch starts both).
        if not any(notebook.metric_keys(r.id) for r in notebook.list_runs()):  # this test alone: no worker to claim it yet
            assert not notebook.live_workers(60)
            earlier = notebook.create_run(PRESETS[preset].model_dump(mode="json"), name="an earlier run", preset=preset)
            attempt = notebook.claim_next_run("this test")
            notebook.log_metrics(earlier, 1, {"loss/total": 1.0}, attempt=attempt)
            notebook.finish_attempt(attempt, "completed")
        ensure_worker(app_server["db"], runs_dir=app_server["folder"] / "runs")
        wait_for(lambda: worker_log.is_file() and "warm launcher ready" in worker_log.read_text(), 90,
                 "the worker's warm launcher")
    # The baseline, measured here: opening the page of a run that already has points until its chart shows one
    # (the same page, chart code and server, no training). On an idle machine it takes about 0.5 s, so four of it
    # is the promised 2 s; on a loaded one both slow down alike. Medians of three: a busy machine has slow moments.
    page_alone = sorted(time_to_the_first_point_of_an_existing_run(app_server, page) for _ in range(3))[1]
    seconds = [launch_and_time_the_first_point(app_server, page, preset) for _ in range(3)]
    print(f"Launch → first point on screen: {', '.join(f'{s:.2f}' for s in seconds)} s (1 click from the home page); "
          f"an existing run's page to its first point: {page_alone:.2f} s")
    assert sorted(seconds)[1] <= max(2.0, 4 * page_alone)


def time_to_the_first_point_of_an_existing_run(app_server, page) -> float:
    with Notebook(app_server["db"]) as notebook:
        run_id = next(r.id for r in notebook.list_runs() if notebook.metric_keys(r.id))
    page.goto(app_server["base"])
    page.locator(".js-plotly-plot").first.wait_for()
    asked = time.monotonic()
    page.goto(f"{app_server['base']}/run?run={run_id}")
    wait_for(lambda: page.evaluate(POINTS_IN_FIRST_CHART), 30, "an existing run's first point on screen", every=0.02)
    return time.monotonic() - asked


def launch_and_time_the_first_point(app_server, page, preset: str) -> float:
    from engine import jobs

    page.goto(app_server["base"])
    page.locator(".js-plotly-plot").first.wait_for()
    # the preset's row among the journal's experiments (below the latest runs, which may name it too)
    launch = page.locator("[data-testid='stHorizontalBlock']", has_text=preset).last.get_by_role(
        "button", name="🚀 Launch")
    launch.wait_for()
    clicked = time.monotonic()
    launch.click()  # the one click
    page.wait_for_url(re.compile(r".*/run\?run=\d+"))  # (the home page's sparklines are charts too)
    wait_for(lambda: page.evaluate(POINTS_IN_FIRST_CHART), 30, "the first loss point on screen", every=0.02)
    seconds = time.monotonic() - clicked
    page.get_by_role("heading", name=re.compile(rf"Run \d+ — {preset}")).wait_for()
    shoot(page, "2c-one-click-first-point")
    with Notebook(app_server["db"]) as notebook:
        run_id = int(re.search(r"run=(\d+)", page.url).group(1))
        assert notebook.get_run(run_id).preset == preset
        jobs.request_stop(notebook, run_id)
        wait_for(lambda: notebook.get_run(run_id).exit_code is not None, 60, "the run to stop and its slot to be free")
    return seconds


def free_the_workers_slot(notebook: Notebook) -> None:
    """Stop every queued or running run and wait until none is left. A run asked to stop by an earlier test may
    end between the listing and the stop: that one needs nothing more."""
    from engine import jobs

    for earlier in notebook.list_runs(status=["queued", "running"]):
        try:
            jobs.request_stop(notebook, earlier.id)
        except Refused:
            if notebook.get_run(earlier.id).status in ("queued", "running"):
                raise
    wait_for(lambda: not notebook.list_runs(status=["queued", "running"]), 60, "earlier runs to stop")


def watch_a_long_tiny_run(app_server, page, notebook: Notebook, name: str, *, steps_on_screen: int) -> int:
    """A tiny run of a million episodes in the worker's one slot (earlier runs stopped), its page open with
    `steps_on_screen` steps of loss drawn; its id."""
    from engine import jobs
    from engine.presets import PRESETS
    from tests.helpers import tiny

    free_the_workers_slot(notebook)
    run_id = jobs.submit(notebook, tiny(PRESETS["tiny"], "schedule.episodes=1000000"), name=name, preset="tiny",
                         start_worker=True, runs_dir=app_server["folder"] / "runs").run_id
    page.goto(f"{app_server['base']}/run?run={run_id}")
    wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART) >= steps_on_screen, 90,
             f"{steps_on_screen} steps of loss on screen")
    return run_id


def test_a_tab_in_the_background_stops_redrawing_and_catches_up_when_shown(app_server, page):
    from engine import jobs

    with Notebook(app_server["db"]) as notebook:
        run_id = watch_a_long_tiny_run(app_server, page, notebook, "watched", steps_on_screen=1)

        page.evaluate(HIDE_THE_TAB)
        # the page redraws once (the server now knows), then holds still while the run goes on
        wait_for(lambda: quiet_for(page, 1.5), 30, "the hidden tab to stop redrawing")
        held = page.evaluate(LAST_STEP_IN_FIRST_CHART)
        assert quiet_for(page, 3.0), "a hidden tab kept redrawing"
        assert notebook.latest_metrics(run_id)["loss/total"][0] > held + 10  # the run did go on meanwhile

        page.evaluate(SHOW_THE_TAB)
        caught_up = seconds_to_show_the_latest_step(page, notebook, run_id)
        # against the same tab's own redraws, in front, on the machine as loaded as it is now: at once is within
        # two of them (a tab that waited for its background period would take 30 s)
        redraws = max(seconds_between_redraws(page) for _ in range(3))
        print(f"a tab brought back to the front shows the run's latest step after {caught_up:.2f} s; in front, "
              f"it redraws every {redraws:.2f} s or sooner")
        assert caught_up <= max(2 * redraws, 1.0), "a tab brought back to the front did not catch up at once"
        jobs.request_stop(notebook, run_id)


def seconds_between_redraws(page) -> float:
    """Seconds from one change of the first chart's last step to the next."""
    def changed_from(step: int) -> bool:
        return page.evaluate(LAST_STEP_IN_FIRST_CHART) != step

    before = page.evaluate(LAST_STEP_IN_FIRST_CHART)
    wait_for(lambda: changed_from(before), 30, "a redraw", every=0.02)
    drawn, started = page.evaluate(LAST_STEP_IN_FIRST_CHART), time.monotonic()
    wait_for(lambda: changed_from(drawn), 30, "the next redraw", every=0.02)
    return time.monotonic() - started


def seconds_to_show_the_latest_step(page, notebook: Notebook, run_id: int) -> float:
    """Seconds from now until the first chart shows the step the notebook holds now."""
    stored = notebook.latest_metrics(run_id)["loss/total"][0]
    started = time.monotonic()
    wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART) >= stored, 30, f"step {stored} on screen", every=0.05)
    return time.monotonic() - started


def test_a_zoom_on_a_live_chart_is_kept_while_points_arrive_until_a_double_click(app_server, page):
    from engine import jobs

    def steps_in_view() -> list[float]:
        return [float(x) for x in page.evaluate(
            "() => document.querySelector('.live-chart').dataset.steps || '0,0'").split(",")]

    with Notebook(app_server["db"]) as notebook:
        run_id = watch_a_long_tiny_run(app_server, page, notebook, "zoomed", steps_on_screen=60)
        plot = page.locator(".live-chart .u-over").first
        box = plot.bounding_box()
        y = box["y"] + box["height"] / 2
        page.mouse.move(box["x"] + 0.2 * box["width"], y)
        page.mouse.down()
        page.mouse.move(box["x"] + 0.5 * box["width"], y, steps=8)
        page.mouse.up()
        zoomed = wait_for(lambda: (v := steps_in_view())[1] < page.evaluate(LAST_STEP_IN_FIRST_CHART) - 5 and v, 10,
                          "the chart to show the dragged steps only")
        shown = page.evaluate(LAST_STEP_IN_FIRST_CHART)
        wait_for(lambda: page.evaluate(LAST_STEP_IN_FIRST_CHART) > shown + 20, 30, "20 more steps drawn")
        assert steps_in_view() == zoomed  # the person's zoom stayed while the points arrived
        plot.dblclick(position={"x": box["width"] / 2, "y": box["height"] / 2})
        wait_for(lambda: steps_in_view()[1] >= page.evaluate(LAST_STEP_IN_FIRST_CHART) - 1, 10,
                 "the whole run in view again, following new points")
        jobs.request_stop(notebook, run_id)


def quiet_for(page, seconds: float) -> bool:
    """Whether the first chart's last step stayed the same for `seconds` (checked every 0.1 s)."""
    first, until = page.evaluate(LAST_STEP_IN_FIRST_CHART), time.monotonic() + seconds
    while time.monotonic() < until:
        if page.evaluate(LAST_STEP_IN_FIRST_CHART) != first:
            return False
        time.sleep(0.1)
    return True


def test_runs_and_compare_pages_render(app_server, page):
    page.goto(f"{app_server['base']}/runs")
    page.get_by_role("heading", name="Runs").wait_for()
    page.get_by_text("browser run").first.wait_for(state="attached")  # the table draws on a canvas
    shoot(page, "5-runs")
    page.goto(f"{app_server['base']}/compare")
    page.get_by_role("heading", name="Compare runs").wait_for()
    shoot(page, "6-compare")


def test_import_the_original_journal_with_its_pictures(app_server, page, tmp_path):
    import io

    from PIL import Image

    from tests.lab_notes.test_journal import ORIGINAL

    picture = io.BytesIO()
    Image.new("RGB", (40, 20), (30, 120, 200)).save(picture, format="PNG")
    hostile, pictures = tmp_path / "hostile.zip", tmp_path / "pic.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("pic/image-20230114171432827.png", picture.getvalue())
        archive.writestr("../../escape.png", picture.getvalue())
    with zipfile.ZipFile(pictures, "w") as archive:
        archive.writestr("pic/image-20230114171432827.png", picture.getvalue())  # one of its 20 figures
    page.goto(f"{app_server['base']}/journal")
    page.get_by_text("⇅ Import / export").click()

    def import_with(archive) -> None:
        # A copy named after the zip: the browser sends no change for the very file its input already holds.
        journal = tmp_path / f"journal-{archive.stem}.md"
        journal.write_bytes(ORIGINAL.read_bytes())
        page.locator("input[type=file]").nth(1).set_input_files(str(journal))
        page.locator("input[type=file]").nth(2).set_input_files(str(archive))
        for name in (journal.name, archive.name):  # both uploads listed before the form is submitted
            page.get_by_text(name, exact=True).wait_for()
        page.get_by_role("button", name="Import", exact=True).click()

    with Notebook(app_server["db"]) as notebook:
        before = len(notebook.list_notes())
    import_with(hostile)  # a member named ../../escape.png: refused as a whole, nothing written anywhere
    page.get_by_text(re.compile(r"Nothing imported: .*'\.\./\.\./escape\.png' points outside the archive")).wait_for()
    with Notebook(app_server["db"]) as notebook:
        assert len(notebook.list_notes()) == before
    shoot(page, "7a-journal-import-refused")
    import_with(pictures)
    page.get_by_text("Imported 3 entries.").wait_for()

    def oldest_first() -> bool:
        # The page reruns after the import; a click can land on an element being replaced, so click until it shows.
        if "2022.12.08" in page.locator("h3").first.inner_text():
            return True
        page.get_by_text("Oldest first", exact=True).click()
        return False

    wait_for(oldest_first, 30, "the oldest entry first", every=1.0)
    page.locator("[data-testid='stImage'] img").first.wait_for()  # the one figure the zip brought
    page.get_by_text(re.compile("Missing figure image-20221214211710614.png")).wait_for()
    page.get_by_text("网络结构").wait_for()
    assert not (tmp_path.parent / "escape.png").exists()
    shoot(page, "7-journal-imported")


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port` (Linux /proc/net/tcp and tcp6, state 0A)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_the_app_listens_on_loopback_only_and_offers_no_deploy(app_server, page):
    assert listening_addresses(app_server["port"]) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::
    page.goto(app_server["base"])
    page.get_by_role("heading", name="Lab notebook").wait_for()
    assert page.get_by_text("Deploy", exact=True).count() == 0


def test_the_evaluation_tab_draws_intervals_and_the_held_out_feature_circle(app_server, page):
    from engine import jobs
    from engine.config import with_overrides
    from engine.presets import PRESETS

    cfg = with_overrides(PRESETS["2022-12-14-normalized-infonce-2d"], [
        "schedule.episodes=60", "schedule.eval_every=20", "schedule.final_eval_episodes=100",
        "schedule.histogram_every=20", "runtime.system_metrics_seconds=0.3"])
    with Notebook(app_server["db"]) as notebook:
        free_the_workers_slot(notebook)  # the worker's one slot is this run's
        run_id = jobs.submit(notebook, cfg, name="feature circle", preset="2022-12-14-normalized-infonce-2d",
                             start_worker=True, runs_dir=app_server["folder"] / "runs").run_id
        wait_for(lambda: notebook.get_run(run_id).status in ("completed", "failed"), 180, "the 2-D run to end")
        assert notebook.get_run(run_id).status == "completed", notebook.get_run(run_id).log_tail
    assert (app_server["folder"] / "runs" / str(run_id) / "eval.json").is_file()
    page.goto(f"{app_server['base']}/run?run={run_id}")
    page.get_by_role("tab", name="Evaluation").click()
    page.get_by_text("Held-out features").wait_for()
    panel = page.get_by_role("tabpanel", name="Evaluation")
    wait_for(lambda: panel.locator(".js-plotly-plot").count() == 2, 30, "the few-shot and feature charts")
    # the few-shot bars carry their intervals; the feature map draws the unit circle the features lie on
    assert panel.locator(".js-plotly-plot .errorbar").count() >= 4
    assert panel.get_by_text("unit circle").count() >= 1
    shoot(page, "7-run-evaluation")
    panel.locator(".js-plotly-plot").nth(1).scroll_into_view_if_needed()
    shoot(page, "8-run-held-out-features")

    page.get_by_role("tab", name="Provenance").click()
    provenance = page.get_by_role("tabpanel", name="Provenance")
    provenance.get_by_text("Command line", exact=True).wait_for()
    provenance.get_by_text(re.compile(r"Code: commit [0-9a-f]{12} on ")).wait_for()
    shoot(page, "9-run-provenance")
    page.get_by_role("tab", name="Charts").click()
    system_chart = page.locator(".live-chart", has_text="System: use (%)")
    system_chart.wait_for()
    system_chart.scroll_into_view_if_needed()
    shoot(page, "10-run-system-metrics")

def test_the_form_shows_what_a_journal_preset_sets_first_and_folds_the_rest(app_server, page):
    page.goto(f"{app_server['base']}/new?preset=2022-12-14-negatives-infonce-diverges")
    page.get_by_role("heading", name="What this experiment sets").wait_for()
    assert page.get_by_label("Learning rate", exact=True).input_value() == "0.01"  # set by the preset: shown
    patch = page.get_by_label("Patch size", exact=True)  # the encoder's, at its default: folded
    assert not patch.is_visible()
    shoot(page, "1b-new-run-journal-preset")
    page.get_by_text("model — Model").click()
    patch.wait_for()


def test_smoothing_and_log_y_stay_while_another_tab_is_open(app_server, page):
    from engine.presets import PRESETS

    with Notebook(app_server["db"]) as notebook:  # a finished run of this test's own (pinned where no worker serves)
        run_id = notebook.create_run(PRESETS["tiny"].model_dump(mode="json"), name="read closely", preset="tiny",
                                 pinned_host="this browser test")
        attempt = notebook.claim_next_run("this browser test", host="this browser test")
        assert attempt.run_id == run_id
        for step in range(1, 41):
            notebook.log_metrics(run_id, step, {"loss/total": 2.0 / step}, attempt=attempt)
        notebook.finish_attempt(attempt, "completed")
    page.goto(f"{app_server['base']}/run?run={run_id}")
    page.locator(".live-chart", has_text="Losses").wait_for()
    smoothing = page.get_by_role("slider", name="Smoothing (debiased EMA)")
    log_y = page.get_by_role("switch", name="Log y")
    smoothing.focus()
    smoothing.press("Home")
    wait_for(lambda: smoothing.input_value() == "0", 10, "the smoothing slider at 0")
    log_y.check(force=True)
    wait_for(lambda: log_y.is_checked(), 10, "log y on")

    page.get_by_role("tab", name="Config").click()
    page.get_by_role("tabpanel", name="Config").get_by_text('"episodes"').first.wait_for()
    page.get_by_role("tab", name="Charts").click()
    page.locator(".live-chart", has_text="Losses").wait_for()
    assert smoothing.input_value() == "0" and log_y.is_checked()


def test_a_chart_that_missed_messages_follows_on_or_asks_once_for_everything(app_server, page):
    """The protocol between app/live_chart.py and its browser half, messages chosen by hand: a busy tab that
    draws only the last of a few messages still follows on; one that missed more asks once for everything."""
    import numpy as np

    from app.live_chart import WINDOW, next_message

    def losses(n: int):
        steps = np.arange(1, n + 1)
        return {"loss/total": (steps, 1.0 / steps)}

    def shown() -> list[int]:  # [points held, last step drawn]
        return [page.evaluate(POINTS_IN_FIRST_CHART), page.evaluate(LAST_STEP_IN_FIRST_CHART)]

    sent = None

    def message_for(n: int) -> dict:
        nonlocal sent
        message, sent = next_message(sent, losses(n), title="Losses", smoothing=0.6, log_y=False)
        return {**message, "asset_base": "/app/static/uplot/"}

    page.goto(f"{app_server['base']}/_stcore/health")  # any page of the app's origin
    page.evaluate(MOUNT_A_LIVE_CHART, (ROOT / "app" / "live_chart.js").read_text())
    deliver = lambda message: page.evaluate("(m) => window.sendToChart(m)", message)  # noqa: E731
    deliver(message_for(10))
    wait_for(lambda: shown() == [10, 10], 10, "the first 10 points drawn")
    deliver(message_for(15))
    for n in range(20, 20 + 5 * (WINDOW - 1), 5):
        message_for(n)  # sent, never drawn: a busy tab draws only the last of those that arrive together
    held = 20 + 5 * (WINDOW - 1)
    deliver(message_for(held))
    wait_for(lambda: shown() == [held, held], 10, f"{held} points: it followed on")
    assert page.evaluate("() => window.resends") == []

    for n in range(held + 5, held + 5 + 5 * WINDOW, 5):
        message_for(n)  # one more missed than a message can make up for
    n = held + 5 + 5 * WINDOW
    behind = message_for(n)
    deliver(behind)
    deliver(behind)  # the same again (a rerun with nothing new): it asks once, not twice
    wait_for(lambda: len(page.evaluate("() => window.resends")) == 1, 10, "a request for everything")
    assert page.evaluate("() => window.resends")[0][0] == "resend"
    assert shown() == [held, held]  # it keeps what it had meanwhile

    sent = None  # what live_chart's send_everything does
    everything = message_for(n)
    assert all(s["start"] == 0 for s in everything["series"]) and everything["generation"] != behind["generation"]
    deliver(everything)
    wait_for(lambda: shown() == [n, n], 10, "all the points, in a new generation")
    assert len(page.evaluate("() => window.resends")) == 1
