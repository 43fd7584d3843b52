"""The Run page: charts, reconstructions, evaluation, provenance, stop and resume, Slurm.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from engine.config import with_overrides
from engine.presets import PRESETS
from tests.app.conftest import live_charts, page, seeded_run, trained_run
from tests.helpers import claimed


def test_run_page_shows_charts_reconstructions_banner_and_lint(notebook):
    run_id = seeded_run(notebook, diverged=True)
    app = page("run", run=str(run_id))
    assert app.title[0].value == f"Run {run_id} — seeded"
    assert any("Diverged at step 50" in e.value for e in app.error)
    assert any("loss.denominator" in w.value for w in app.warning)
    assert list(live_charts(app)) == ["Losses", "Accuracy", "Gradient norm", "Learning rate"]
    assert not app.get("image")  # only the open tab is drawn
    app = page("run", run=str(run_id), tab="Reconstructions")
    assert app.get("image")  # the reconstruction at the latest step
    assert app.select_slider[0].options == ["25", "50"] and app.select_slider[0].value == 50


def test_smoothing_and_log_y_follow_the_person_to_the_next_run_and_to_compare(notebook):
    first, second = seeded_run(notebook, name="first"), seeded_run(notebook, name="second")
    app = page("run", run=str(first))
    assert "s" in live_charts(app)["Losses"]["series"][0]  # smoothed by default (0.6)
    app.slider(key="smoothing").set_value(0.0).run()
    app.toggle(key="log y").set_value(True).run()
    assert "s" not in live_charts(app)["Losses"]["series"][0] and live_charts(app)["Losses"]["log_y"]
    app.query_params["run"] = str(second)
    app.run()
    assert app.title[0].value == f"Run {second} — second"
    assert (app.slider(key="smoothing").value, app.toggle(key="log y").value) == (0.0, True)
    assert live_charts(app)["Losses"]["log_y"]
    app.switch_page("app_pages/compare.py")
    app.query_params["runs"] = f"{first},{second}"
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert (app.slider(key="smoothing").value, app.toggle(key="log y").value) == (0.0, True)


def test_run_page_for_a_missing_run_says_so(notebook):
    app = page("run", run="404")
    assert "There is no run 404." in [e.value for e in app.error]


def test_run_page_stop_and_resume_go_through_the_lifecycle(notebook):
    run_id = notebook.create_run(with_overrides(PRESETS["tiny"], []).model_dump(mode="json"), name="live", preset="tiny")
    attempt = claimed(notebook, run_id)
    app = page("run", run=str(run_id))
    stop = next(b for b in app.button if b.label == "⏹ Stop")
    stop.click().run()
    assert notebook.get_run(run_id).stop_requested and notebook.get_run(run_id).status == "running"
    assert "stopping" in " ".join(m.value for m in app.markdown)
    notebook.finish_attempt(attempt, "stopped")
    app = page("run", run=str(run_id))
    next(b for b in app.button if b.label == "▶ Resume").click().run()
    assert notebook.get_run(run_id).status == "queued"


def test_run_page_for_a_deleted_run_says_so(notebook):
    run_id = seeded_run(notebook)
    notebook.delete_run(run_id)
    app = page("run", run=str(run_id))
    assert any(f"Run {run_id} (seeded) was deleted" in w.value for w in app.warning)
    assert page("runs").dataframe == [] or run_id not in list(page("runs").dataframe[0].value["id"])


def test_the_run_page_drops_points_a_resume_discarded(notebook):
    """The page keeps each series between reruns and reads only newer steps; a resumed run is a new attempt,
    and what the resume discarded must leave the chart too."""
    run_id = notebook.create_run(with_overrides(PRESETS["tiny"], []).model_dump(mode="json"), name="resumed")
    first = claimed(notebook, run_id)
    for step in range(1, 11):
        notebook.log_metrics(run_id, step, {"loss/total": 10.0}, attempt=first)
    notebook.add_checkpoint(run_id, 4, "/4.pt", attempt=first)
    app = page("run", run=str(run_id))

    def plotted() -> list[tuple[int, float]]:
        (series,) = [s for s in live_charts(app)["Losses"]["series"] if s["name"] == "loss/total"]
        assert series["start"] == 0  # everything, not points to add to what the browser holds
        return list(zip(series["x"], series["y"]))

    assert [x for x, _ in plotted()] == list(range(1, 11))
    notebook.finish_attempt(first, "failed", reason="killed")
    notebook.resume(run_id, 4)
    second = claimed(notebook, run_id)
    for step in range(5, 7):
        notebook.log_metrics(run_id, step, {"loss/total": 1.0}, attempt=second)
    notebook.flush()
    app.run()
    assert plotted() == [(1, 10.0), (2, 10.0), (3, 10.0), (4, 10.0), (5, 1.0), (6, 1.0)]


def test_the_run_page_draws_the_few_shot_report_and_the_held_out_features(notebook):
    run_id = trained_run(notebook, "two-d")
    assert notebook.snapshot_steps(run_id, "features") == [3, 6]
    app = page("run", run=str(run_id), tab="Evaluation")
    figures = [c.proto.spec for c in app.get("plotly_chart")]
    few_shot = next(f for f in figures if "6-way" in f or "3-way" in f)
    assert '"error_y"' in few_shot and "held-out classes" in few_shot and "seen classes" in few_shot
    feature_spec = next(f for f in figures if "unit circle" in f)
    assert '"scaleanchor"' in feature_spec  # 2-D normalised features drawn on a round unit circle
    assert app.select_slider[0].options == ["3", "6"] and app.select_slider[0].value == 6
    app.select_slider[0].set_value(3).run()
    assert not app.exception
    assert any("trained jointly with the encoder" in c.value for c in app.caption)
    table = app.dataframe[0].value
    assert list(table.columns) == ["held-out classes", "seen classes, held-out images"]
    assert list(table.index) == ["nearest prototype", "discriminator", "k-NN", "linear probe"]
    assert "±" in str(table.iloc[0, 0])


def test_provenance_tab_dirty_badge_code_differences_and_the_clone_warning(notebook):
    from engine.provenance import collect_provenance, git_state

    now = collect_provenance(["python", "-m", "engine", "run-child", "1"])
    first, second = seeded_run(notebook, name="old code"), seeded_run(notebook, name="today")
    old = {**now, "git": {"commit": "0" * 40, "branch": "main", "dirty": True, "changed": ["engine/losses.py"],
                          "diff_head": "+# an experiment\n", "diff_bytes": 17, "diff_file": "/runs/1/a.diff"}}
    notebook.log_snapshot(first, "provenance", 0, old, key="1")
    notebook.log_snapshot(second, "provenance", 0, {**now, "git": {**git_state(), "dirty": False}}, key="1")
    app = page("run", run=str(first), tab="Provenance")
    assert any("dirty tree" in m.value for m in app.markdown)
    assert any("0000000000" in m.value and "dirty tree" in m.value for m in app.markdown)
    table = app.dataframe[-1].value
    assert table.loc["package torch", "value"] == now["packages"]["torch"]
    assert any(c.value.startswith("python -m engine run-child") for c in app.code)
    compare = page("compare", runs=f"{first},{second}")
    code_diff = next(d.value for d in compare.dataframe if "git.commit" in d.value.index)
    assert "git.dirty" in code_diff.index and "packages.torch" not in code_diff.index
    clone = page("new_run", clone=str(first))
    assert any("not the code run" in w.value and "ran commit 0000000000" in w.value for w in clone.warning)


def test_a_run_from_before_held_out_splits_clones_with_defaults_and_refuses_to_continue(notebook, tmp_path):
    old = PRESETS["tiny"].model_dump(mode="json")
    old["data"]["holdout_classes"] = 0  # then: "evaluate on the training classes"
    del old["data"]["holdout_images"], old["schedule"]["final_eval_episodes"], old["model"]["decoders"]["pos_embed"]
    run_id = notebook.create_run(old, name="from 2025", preset="tiny")
    attempt = claimed(notebook, run_id)
    checkpoint = tmp_path / "step_000000010.pt"
    checkpoint.write_bytes(b"a checkpoint")
    notebook.add_checkpoint(run_id, 10, str(checkpoint), attempt=attempt)
    notebook.finish_attempt(attempt, "stopped")
    app = page("run", run=str(run_id))
    next(b for b in app.button if b.label == "▶ Resume").click().run()
    assert any("made before held-out splits" in w.value for w in app.warning)
    assert notebook.get_run(run_id).status == "stopped"  # nothing changed
    clone = page("new_run", clone=str(run_id))
    assert clone.number_input(key=f"clone{run_id}:data.holdout_images").value == 0.2  # today's default
    assert clone.selectbox(key=f"clone{run_id}:model.decoders.pos_embed").value == "sincos"
    assert clone.text_input(key=f"clone{run_id}:data.holdout_classes").value == "0"  # what it did have is kept


def test_the_bare_run_entry_opens_the_latest_run(notebook):
    empty = page("run")
    assert [i.value for i in empty.info] == ["No runs yet."]
    seeded_run(notebook, name="older")
    latest = seeded_run(notebook, name="latest")
    app = page("run")
    assert app.title[0].value == f"Run {latest} — latest" and app.query_params.get("run") == str(latest)


def test_a_run_resumed_without_a_checkpoint_waits_for_its_first_point_again(notebook):
    """The page drew a run's first points, the run failed before any checkpoint and was resumed (its points
    discarded, the same attempt number until a worker claims it): the page waits again, it does not rerun
    itself without end."""
    run_id = notebook.create_run(PRESETS["tiny"].model_dump(mode="json"), name="restarted", preset="tiny")
    attempt = claimed(notebook, run_id)
    app = page("run", run=str(run_id))
    app.session_state[f"first points drawn:{run_id}:{attempt.number}"] = True  # as the waiting fragment leaves it
    notebook.log_metrics(run_id, 1, {"loss/total": 1.0}, attempt=attempt)
    notebook.flush()
    notebook.finish_attempt(attempt, "failed", reason="crashed before its first checkpoint")
    notebook.resume(run_id, 0)
    assert not notebook.metric_keys(run_id) and notebook.get_run(run_id).status == "queued"
    app.run(timeout=15)
    assert not app.exception, [e.value for e in app.exception]
    assert any("No metrics yet" in info.value for info in app.info)


def test_a_slurm_run_shows_its_job_ranks_and_the_jobs_files(notebook, tmp_path):
    cfg = with_overrides(PRESETS["tiny"], ["runtime.executor=slurm", "runtime.processes=2"])
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name="on the cluster", preset="tiny")
    attempt = claimed(notebook, run_id)
    folder = tmp_path / "slurm"
    folder.mkdir()
    (folder / "4242_1_log.err").write_text("rank 1: gloo connected\n")
    notebook.log_snapshot(run_id, "slurm", 0, {"job_id": "4242", "attempt": 1, "folder": str(folder)},
                      key="attempt-1", attempt=attempt)
    app = page("run", run=str(run_id), tab="Output")
    facts = " ".join(m.value for m in app.markdown)
    assert "Slurm job 4242:" in facts and "2 rank(s) on 1 node(s)" in facts
    assert any(e.label == "Slurm job file 4242_1_log.err" for e in app.expander)
    assert any("gloo connected" in c.value for c in app.code)


def test_the_weights_tab_draws_a_trained_runs_histograms_and_says_what_taking_them_cost(notebook):
    run_id = trained_run(notebook, "histograms", "schedule.histogram_every=3")
    app = page("run", run=str(run_id), tab="Weights & gradients")
    assert not app.exception, [e.value for e in app.exception]
    assert app.select_slider[0].options == ["3", "6"] and app.select_slider[0].value == 6
    (caption,) = [c.value for c in app.caption if c.value.startswith("Taken in")]
    assert caption.endswith("ms, timed apart from the step: the step's images/s is its training's alone.")
    assert 0 < float(caption.split()[2].replace(",", ""))
