"""Page logic with Streamlit's AppTest (no browser): every page against a seeded temporary notebook."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from engine.config import with_overrides
from engine.presets import PRESETS
from lab_notes import Notebook
from tests.helpers import claimed, counted_image_folder

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    monkeypatch.setenv("LAB_NOTEBOOK_URL", url)
    monkeypatch.setenv("LAB_START_WORKER", "0")
    st.cache_resource.clear()  # the app opens the notebook named by this test's environment
    notebook = Notebook(url)
    yield notebook
    notebook.close()
    st.cache_resource.clear()


def page(name: str, *, secrets: dict | None = None, user: dict | None = None, **query: str) -> AppTest:
    """Page `name` (with secrets.toml's `secrets` and `st.user` as `user`, when given) after its query's rerun."""
    app = AppTest.from_file(APP, default_timeout=60)
    if secrets is not None:
        app.secrets = secrets
    if user is not None:
        app.user = user
    app.run()
    if user is None or user.get("is_logged_in"):  # a visitor has no navigation: the sign-in gate stopped it
        app.switch_page(f"app_pages/{name}.py")
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def live_charts(app: AppTest) -> dict[str, dict]:
    """The run page's live charts by title: what each sent the browser last (app/live_chart.py)."""
    return {message["title"]: message for message in (
        json.loads(c.proto.json) for c in app.get("bidi_component") if c.proto.component_name == "lab_notebook.live_chart")}


def png(colour: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 12), (colour, 40, 40)).save(out, format="PNG")
    return out.getvalue()


def seeded_run(notebook: Notebook, *, name: str = "seeded", lr: float = 0.001, diverged: bool = False) -> int:
    mae = "2023-01-12-mae-two-decoders-different-targets"
    cfg = with_overrides(PRESETS[mae], [f"optim.lr={lr}"])
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name=name, preset=mae,
                             lint=[{"path": "loss.denominator", "message": "negatives only"}])
    attempt = claimed(notebook, run_id)
    for step in range(1, 51):
        loss = math.nan if diverged and step == 50 else 5.0 - step * 0.05
        notebook.log_metrics(run_id, step, {"loss/total": loss, "loss/recon_a": 0.3, "acc/prototype": step / 50,
                                        "grad_norm": 1.0, "lr": lr})
    notebook.log_image(run_id, "reconstruction", 25, png(100))
    notebook.log_image(run_id, "reconstruction", 50, png(200))
    notebook.flush()
    if diverged:
        notebook.finish_attempt(attempt, "diverged", reason="loss/total is nan",
                            report={"policy": "stop", "first_step": 50, "reason": "loss/total is nan", "incidents": []})
    else:
        notebook.finish_attempt(attempt, "completed")
    return run_id


def test_new_run_rejects_bad_values_naming_the_field(notebook):
    app = page("new_run")
    app.number_input(key="tiny:optim.lr").set_value(-1.0).run()
    errors = " ".join(e.value for e in app.error)
    assert "optim.lr" in errors and "greater than 0" in errors
    assert app.button[-1].label == "🚀 Launch" and app.button[-1].disabled
    app.number_input(key="tiny:optim.lr").set_value(0.01).run()  # field errors first, then cross-field ones
    app.number_input(key="tiny:model.encoder.patch_size").set_value(5).run()
    assert "model.encoder.patch_size" in " ".join(e.value for e in app.error)
    assert "does not divide" in " ".join(e.value for e in app.error)
    assert notebook.list_runs() == []


def test_new_run_shows_lint_and_launch_queues_a_run(notebook):
    app = page("new_run")
    app.checkbox(key="tiny:loss.normalize").set_value(True).run()
    app.number_input(key="tiny:model.contrastive.feature_dim").set_value(1).run()
    assert any("model.contrastive.feature_dim" in w.value for w in app.warning)
    app.text_input(key="name:tiny").set_value("one-d features").run()
    app.button[-1].click().run()
    (run,) = notebook.list_runs()
    assert (run.name, run.status, run.preset) == ("one-d features", "queued", "tiny")
    assert run.config["model"]["contrastive"]["feature_dim"] == 1
    assert [w["path"] for w in run.lint] == ["model.contrastive.feature_dim"]


def test_clone_prefills_from_the_run_and_records_its_parent(notebook):
    parent = seeded_run(notebook, lr=0.005)
    app = page("new_run", clone=str(parent))
    assert app.number_input(key=f"clone{parent}:optim.lr").value == 0.005
    app.number_input(key=f"clone{parent}:optim.lr").set_value(0.01).run()
    app.button[-1].click().run()
    child = notebook.list_runs()[0]
    assert child.parent_id == parent and child.config["optim"]["lr"] == 0.01
    assert notebook.get_run(parent).config["optim"]["lr"] == 0.005  # the original never changes


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


def test_compare_shows_only_differing_config_fields(notebook):
    first, second = seeded_run(notebook, name="a", lr=0.001), seeded_run(notebook, name="b", lr=0.002)
    app = page("compare", runs=f"{first},{second}")
    diff = app.dataframe[0].value
    assert list(diff.index) == ["optim.lr"]
    assert len(app.get("plotly_chart")) == 5  # one overlaid chart per metric


def test_a_pinned_chart_appears_in_the_journal(notebook):
    run_id = seeded_run(notebook)
    app = page("run", run=str(run_id))
    app.button(key="pin:Losses:pin").click().run()
    assert not app.exception
    (note,) = notebook.list_notes()
    assert note.run_ids == [run_id] and note.figures[0].chart_spec["keys"] == ["loss/recon_a", "loss/total"]
    assert note.figures[0].image.startswith(b"\x89PNG")
    journal = page("journal")
    markdown = " ".join(m.value for m in journal.markdown)
    assert f"Run {run_id}: losses" in markdown
    assert journal.get("image")


def test_journal_renders_the_original_with_missing_figures_and_no_raw_html(notebook):
    notebook.import_journal(ROOT / "tests" / "lab_notes" / "original-journal.md")
    notebook.add_note(None, "", "<script>alert(1)</script> plain words")
    app = page("journal")
    markdown = [m.value for m in app.markdown]
    assert markdown.index("### 2023.01.12") < markdown.index("### 2022.12.08")  # newest first
    assert any("Missing figure **image-20221214211710614.png**" in w.value for w in app.warning)
    app.text_input(key="journal:search").set_value("准确率").run()
    headings = [m.value for m in app.markdown if m.value.startswith("###")]
    assert headings == ["### 2022.12.14", "### 2022.12.08"]


def test_runs_page_lists_and_filters(notebook):
    seeded_run(notebook, name="alpha")
    seeded_run(notebook, name="beta", diverged=True)
    app = page("runs")
    table = app.dataframe[0].value
    assert list(table["name"]) == ["beta", "alpha"] and list(table["status"]) == ["diverged", "completed"]
    app.multiselect[0].set_value(["diverged"]).run()
    assert list(app.dataframe[0].value["name"]) == ["beta"]


def test_pages_never_import_torch(notebook, tmp_path):
    """Each page module, run in a fresh interpreter (Streamlit's bare mode), leaves torch out of sys.modules."""
    seeded_run(notebook, name="a")
    seeded_run(notebook, name="b")
    sweep = notebook.create_sweep(name="s", preset="tiny", mode="grid", fields={"optim.lr": [0.1]},
                              runs=[("s [lr=0.1]", PRESETS["tiny"].model_dump(mode="json"), [])])
    notebook.log_metrics(notebook.get_sweep(sweep).run_ids[0], 1, {"loss/total": 1.0})
    notebook.flush()  # bare mode ignores st.stop: every page must find something to draw
    pages = sorted(str(p) for p in (ROOT / "app" / "app_pages").glob("*.py"))
    code = ("import runpy, sys; sys.path.insert(0, '.'); "
            f"[runpy.run_path(page) for page in {pages!r}]; print('torch' in sys.modules)")
    env = {**os.environ, "LAB_NOTEBOOK_URL": notebook.url, "LAB_START_WORKER": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_the_app_starts_no_worker_outside_a_streamlit_server(monkeypatch):
    """Importing the app script elsewhere (a multiprocessing child re-imports __main__) must not spawn workers."""
    from app.services import may_start_worker

    monkeypatch.delenv("LAB_START_WORKER", raising=False)
    assert not st.runtime.exists() and may_start_worker() is False


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


def test_the_form_offers_only_what_the_data_folder_holds(notebook, tmp_path, monkeypatch):
    counted_image_folder(tmp_path / "datasets" / "my-shapes")
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "datasets"))
    app = page("new_run")
    choice = app.selectbox(key="tiny:data.path")
    assert choice.options == ["(none)", "my-shapes"]
    app.selectbox(key="tiny:data.dataset").set_value("folder").run()
    app.selectbox(key="tiny:data.path").set_value("my-shapes").run()
    assert not [e.value for e in app.error if "data.path" in e.value]


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


def trained_run(notebook: Notebook, name: str, *extra: str) -> int:
    """A real tiny run with 2-D normalised features, trained in this process into the notebook."""
    from engine.train import train
    from lab_notes.notebook_sink import NotebookSink
    from tests.helpers import tiny

    cfg = tiny(PRESETS["2022-12-14-normalized-infonce-2d"], "schedule.episodes=6", "schedule.eval_every=3",
               "schedule.eval_episodes=4", "schedule.final_eval_episodes=20", *extra)
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name=name, preset="2022-12-14-normalized-infonce-2d")
    sink = NotebookSink(notebook, claimed(notebook, run_id))
    assert train(cfg, sink).status == "completed"  # its status event ends the attempt
    return run_id


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


def test_compare_shows_few_shot_accuracy_side_by_side(notebook):
    first, second = trained_run(notebook, "a"), trained_run(notebook, "b", "runtime.seed=1")
    app = page("compare", runs=f"{first},{second}")
    few_shot = next(c.proto.spec for c in app.get("plotly_chart") if "held-out classes" in c.proto.spec)
    assert few_shot.count('"type":"bar"') == 2 and '"error_y"' in few_shot
    assert any("3-way 2-shot, 20 episodes on held-out classes" in c.value for c in app.caption)


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


def test_runs_page_backs_up_and_offers_frames(notebook, tmp_path, monkeypatch):
    from lab_notes.backup import backups_in

    monkeypatch.setenv("LAB_BACKUP_DIR", str(tmp_path / "backups"))
    seeded_run(notebook, name="backed up")
    app = page("runs")
    labels = [b.proto.label for b in app.get("download_button")]
    assert labels == ["⬇ runs.csv", "⬇ runs.parquet"]
    next(b for b in app.button if b.label == "Back up now").click().run()
    assert not app.exception
    (made,) = backups_in(tmp_path / "backups")
    assert any("Backed up to" in s.value and "1 runs" in s.value for s in app.success)
    with Notebook(f"sqlite:///{made}") as copy:
        assert copy.list_runs()[0].name == "backed up"


def test_home_launches_a_journal_experiment_in_one_click_and_edits_in_another(notebook):
    app = page("home")
    assert any("2022-12-14-normalized-infonce-2d" in m.value for m in app.markdown)
    next(b for b in app.button if b.key == "launch:2022-12-14-normalized-infonce-2d").click().run()
    (run,) = notebook.list_runs()
    assert (run.preset, run.status) == ("2022-12-14-normalized-infonce-2d", "queued")
    assert app.query_params.get("run") == str(run.id)  # on its run page
    app = page("home")
    next(b for b in app.button if b.key == "edit:2023-01-12-mae-two-decoders-different-targets").click().run()
    assert app.selectbox[0].value == "2023-01-12-mae-two-decoders-different-targets"  # the New-run form, pre-filled


def test_runs_page_shows_progress_and_eta_of_a_running_run(notebook):
    run_id = notebook.create_run(with_overrides(PRESETS["tiny"], ["schedule.episodes=400"]).model_dump(mode="json"),
                             name="halfway", preset="tiny")
    attempt = claimed(notebook, run_id)
    for step in range(1, 101):
        notebook.log_metrics(run_id, step, {"loss/total": 1.0 / step, "images_per_s": 250.0}, attempt=attempt)
    notebook.flush()
    app = page("runs")
    row = app.dataframe[0].value.iloc[0]
    assert row["progress"] == 0.25 and row["step"] == "100 / 400" and row["ETA"].count(":") == 2
    assert row["images/s"] == 250.0
    home = page("home")
    assert any(p.proto.text.startswith("step 100 / 400 · ETA") for p in home.get("progress"))


def test_a_sweep_from_the_form_queues_four_runs_and_its_page_marks_the_best(notebook):
    app = page("new_run")
    app.selectbox(key="sweep-field0:tiny").set_value("optim.lr").run()
    app.text_input(key="sweep-values0:tiny").set_value("0.001, 0.01").run()
    app.selectbox(key="sweep-field1:tiny").set_value("loss.temperature").run()
    app.text_input(key="sweep-values1:tiny").set_value("0.1, 0.5").run()
    next(b for b in app.button if b.label.startswith("🧹 Launch sweep (4 runs)")).click().run()
    (sweep,) = notebook.list_sweeps()
    runs = [notebook.get_run(i) for i in sweep.run_ids]
    assert len(runs) == 4 and {r.sweep_id for r in runs} == {sweep.id}
    assert sorted((r.config["optim"]["lr"], r.config["loss"]["temperature"]) for r in runs) == [
        (0.001, 0.1), (0.001, 0.5), (0.01, 0.1), (0.01, 0.5)]
    for rank, run in enumerate(runs):  # the third run reaches the highest held-out accuracy
        attempt = claimed(notebook, run.id)
        for step in (1, 2):
            notebook.log_metrics(run.id, step, {"eval/acc/prototype": [0.3, 0.4, 0.7, 0.5][rank] * step / 2,
                                            "loss/total": 1.0 / step}, attempt=attempt)
        notebook.finish_attempt(attempt, "completed")
    sweep_page = page("sweep", sweep=str(sweep.id))
    assert any(f"Best by eval/acc/prototype: [run {runs[2].id}" in s.value for s in sweep_page.success)
    specs = [c.proto.spec for c in sweep_page.get("plotly_chart")]
    assert any('"parcoords"' in spec and "optim.lr" in spec for spec in specs)
    assert sweep_page.dataframe[0].value.iloc[2]["best"] == "🏆"


def test_the_form_labels_fields_in_words_with_the_path_in_the_help(notebook):
    app = page("new_run")
    field = app.number_input(key="tiny:data.samples_per_class")
    assert field.label == "Samples per class" and "field `data.samples_per_class`" in field.help
    assert app.number_input(key="tiny:data.n_way").label == "Classes per episode (N)"
    assert any(m.value == "**encoder — ViT encoder**" for m in app.markdown)  # once per sub-section


def form_fields_in_order(app: AppTest, prefix: str) -> list[tuple[str, object]]:
    """The form's fields top to bottom: (dotted path, the expander holding it or None)."""
    from streamlit.testing.v1.element_tree import Expander

    found = []

    def walk(node, expander) -> None:
        for index in sorted(getattr(node, "children", {})):
            child = node.children[index]
            key = getattr(child, "key", None)
            if isinstance(key, str) and key.startswith(f"{prefix}:"):
                found.append((key.removeprefix(f"{prefix}:"), expander))
            walk(child, child if isinstance(child, Expander) else expander)

    walk(app.main, None)
    return found


def test_a_journal_preset_shows_what_it_sets_first_and_folds_the_rest(notebook):
    name = "2022-12-14-negatives-infonce-diverges"
    app = page("new_run", preset=name)
    assert app.selectbox[0].value == name
    assert [s.value for s in app.subheader] == ["What this experiment sets"]
    fields = form_fields_in_order(app, name)
    leading = [path for path, expander in fields if expander is None]
    assert set(leading) == {"model.discriminator.enabled", "loss.temperature", "loss.denominator", "loss.normalize",
                            "loss.log_sum_exp", "optim.lr", "schedule.episodes", "schedule.image_every"}
    assert [path for path, _ in fields[:len(leading)]] == leading  # all of them before any folded field
    folded = [(path, expander) for path, expander in fields if expander is not None]
    assert len(fields) == len({path for path, _ in fields}) == len(leading) + len(folded)  # each field once
    assert {expander.label for _, expander in folded} >= {"data — Data and episodes", "model — Model"}
    assert not any(expander.proto.expanded for _, expander in folded)  # every section collapsed
    assert app.number_input(key=f"{name}:optim.lr").label == "Learning rate"  # labels in words, as everywhere
    markdown = [m.value for m in app.markdown]
    assert "**Model · discriminator — Discriminator**" in markdown and "**Losses**" in markdown

    app.number_input(key=f"{name}:optim.lr").set_value(-1.0).run()  # messages still under the field
    assert any("optim.lr" in e.value for e in app.error)
    app.number_input(key=f"{name}:optim.lr").set_value(0.01).run()
    app.text_input(key=f"name:{name}").set_value("as the journal").run()
    next(b for b in app.button if b.label == "🚀 Launch").click().run()
    (run,) = notebook.list_runs()
    assert (run.preset, run.status) == (name, "queued")
    assert run.config == PRESETS[name].model_dump(mode="json")  # the same config the unfolded form queued


def test_a_clone_shows_what_its_run_set_first(notebook):
    parent = seeded_run(notebook, lr=0.005)
    app = page("new_run", clone=str(parent))
    assert [s.value for s in app.subheader] == [f"What run {parent} sets"]
    leading = [path for path, expander in form_fields_in_order(app, f"clone{parent}") if expander is None]
    assert "optim.lr" in leading and "model.masking.ratio" in leading and "data.image_size" not in leading


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


def test_the_slurm_fields_show_only_where_sbatch_is_reachable_or_the_run_uses_slurm(notebook, monkeypatch):
    import app.form

    def labels(app) -> set[str]:
        return {w.label for kind in ("selectbox", "number_input", "text_input") for w in getattr(app, kind)}

    monkeypatch.setattr(app.form.shutil, "which", lambda name: None)  # a laptop without Slurm
    plain = page("new_run")
    assert "Executor" not in labels(plain) and "Partition" not in labels(plain)
    plain.button[-1].click().run()  # Launch still queues a run, on the default local executor
    assert notebook.list_runs()[0].config["runtime"]["executor"] == "local"

    cfg = with_overrides(PRESETS["tiny"], ["runtime.executor=slurm"])
    parent = notebook.create_run(cfg.model_dump(mode="json"), name="went to slurm", preset="tiny")
    clone = page("new_run", clone=str(parent))  # configured: shown, so the clone keeps it
    assert {"Executor", "Partition"} <= labels(clone)
    monkeypatch.setattr(app.form.shutil, "which", lambda name: "/usr/bin/sbatch")
    assert {"Executor", "Partition"} <= labels(page("new_run"))
