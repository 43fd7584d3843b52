"""The Runs page: list, filters, progress, backups and frames.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from engine.config import with_overrides
from engine.presets import PRESETS
from lab_notes import Notebook
from tests.app.conftest import page, seeded_run
from tests.helpers import claimed


def test_runs_page_lists_and_filters(notebook):
    seeded_run(notebook, name="alpha")
    seeded_run(notebook, name="beta", diverged=True)
    app = page("runs")
    table = app.dataframe[0].value
    assert list(table["name"]) == ["beta", "alpha"] and list(table["status"]) == ["diverged", "completed"]
    app.multiselect[0].set_value(["diverged"]).run()
    assert list(app.dataframe[0].value["name"]) == ["beta"]


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
