"""The search's side of the app (AppTest, no browser): the New-run form's search section refuses bad input naming
the field and queues nothing, then launches a search; the Sweep page of a search shows the best so far, Optuna's
importances (or why not yet), parallel coordinates and the trials table with the step a trial was pruned at."""

from __future__ import annotations

import pytest

from engine.presets import PRESETS
from engine.search import advance_search, submit_search
from engine.search_space import search_settings
from tests.app.conftest import page
from tests.helpers import tiny


def test_the_form_refuses_a_bad_range_naming_the_field_then_launches_a_search(notebook):  # noqa: F811
    app = page("new_run")
    app.selectbox(key="search-field0:tiny").set_value("optim.lr").run()
    app.text_input(key="search-range0:tiny").set_value("0:1e-1:log").run()
    assert any("optim.lr" in e.value and "log range needs bounds above 0" in e.value for e in app.error)
    launch = next(b for b in app.button if b.label.startswith("🔎 Launch search"))
    assert launch.disabled and notebook.list_sweeps() == []
    app.text_input(key="search-range0:tiny").set_value("1e-4:1e-2:log").run()
    app.selectbox(key="search-field1:tiny").set_value("loss.temperature").run()
    app.text_input(key="search-range1:tiny").set_value("0.05:1").run()
    app.number_input(key="search-trials:tiny").set_value(6).run()
    next(b for b in app.button if b.label.startswith("🔎 Launch search (6 trials)")).click().run()
    (sweep,) = notebook.list_sweeps()
    search = notebook.get_search(sweep.id)
    assert sweep.mode == "search" and search.fields == {"optim.lr": "0.0001:0.01:log", "loss.temperature": "0.05:1"}
    assert search.settings["trials"] == 6 and search.settings["sampler"] == "tpe"
    assert len(sweep.run_ids) == 2  # two trials at once, queued at launch


def seeded_search(notebook) -> tuple[int, dict[int, int]]:  # noqa: F811
    """A search of 6 trials: four completed, one diverged, one pruned at step 10. Returns (sweep id, trial -> run)."""
    cfg = tiny(PRESETS["tiny"])
    settings = search_settings(cfg, ["optim.lr=1e-4:1e-2:log", "loss.temperature=0.05:1"], "eval/acc/prototype:max",
                               trials=6, parallel=6, pruner="median")
    sweep_id = submit_search(notebook, cfg, settings, name="lr & τ <b>", preset="tiny")
    runs = {trial: run_id for run_id, trial in notebook.trial_numbers(sweep_id).items()}
    attempts = {trial: notebook.claim_next_run("w") for trial in sorted(runs)}
    for trial, accuracy in enumerate((0.6, 0.5, 0.7, 0.4, 0.55, 0.1)):
        notebook.log_metrics(runs[trial], 10, {"eval/acc/prototype": accuracy}, attempt=attempts[trial])
        if trial < 4:
            notebook.log_metrics(runs[trial], 20, {"eval/acc/prototype": accuracy + 0.1}, attempt=attempts[trial])
    notebook.flush()
    for trial in range(4):
        notebook.finish_attempt(attempts[trial], "completed")
    notebook.finish_attempt(attempts[4], "diverged", report={"reason": "loss/total is nan"})
    advance_search(notebook, sweep_id)  # tells 0..4, prunes 5 (far below the median at step 10)
    notebook.finish_attempt(attempts[5], "stopped")
    advance_search(notebook, sweep_id)
    return sweep_id, runs


def test_the_sweep_page_of_a_search(notebook):  # noqa: F811
    sweep_id, runs = seeded_search(notebook)
    app = page("sweep", sweep=str(sweep_id))
    assert any(f"Search {sweep_id}" in t.value and "&lt;b&gt;" not in t.value for t in app.title)
    assert any(f"Best: trial 2, [run {runs[2]}]" in s.value and "0.8" in s.value for s in app.success)
    specs = [c.proto.spec for c in app.get("plotly_chart")]
    assert any('"parcoords"' in s and "optim.lr" in s for s in specs)
    assert any("best so far" in s for s in specs)
    assert any("Parameter importance" in s for s in specs)
    table = app.dataframe[0].value.set_index("trial")
    assert table.loc[5, "state"] == "✂️ pruned" and table.loc[5, "pruned at step"] == 10
    assert table.loc[5, "run status"] == "stopped" and table.loc[5, "why"] == "pruned at step 10"
    assert table.loc[4, "state"] == "❌ failed" and table.loc[4, "run status"] == "diverged"
    assert table.loc[2, "eval/acc/prototype"] == pytest.approx(0.8)


def test_a_search_with_too_few_trials_says_why_it_has_no_importances(notebook):  # noqa: F811
    cfg = tiny(PRESETS["tiny"])
    settings = search_settings(cfg, ["optim.lr=1e-4:1e-2:log"], "loss/total", trials=3, parallel=1)
    sweep_id = submit_search(notebook, cfg, settings, name="young", preset="tiny")
    app = page("sweep", sweep=str(sweep_id))
    assert any("need at least 3 completed trials; this search has 0" in i.value for i in app.info)
    assert app.dataframe[0].value.iloc[0]["state"] == "⏳ running"
