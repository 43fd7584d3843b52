"""Backups taken while runs write are whole and restore; the notebook reads back as pandas frames, NaN and ±inf
included."""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lab_notes import Notebook
from lab_notes.backup import BackupError, backup, backup_if_due, backup_into, backups_in, restore
from tests.helpers import fresh_postgres_database, missing_service, wait_for
from tests.lab_notes.conftest import PG_URL

ROOT = Path(__file__).resolve().parents[2]
WRITER = """
import sys, time
from pathlib import Path
from lab_notes import Notebook
url, run_id, stop = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
with Notebook(url, flush_interval=0.02) as notebook:
    step, deadline = 0, time.monotonic() + 120
    while not stop.exists() and time.monotonic() < deadline:
        step += 1
        notebook.log_metrics(run_id, step, {"loss": 1.0 / step, "acc": step % 7 / 7})
        if step % 25 == 0:
            notebook.flush()
"""


def committed_steps(url: str) -> dict[int, int]:
    """Per run, the highest step committed now (the writers commit whole prefixes 1..k)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        found = dict(connection.execute(text("SELECT run_id, MAX(step) FROM metrics WHERE key = 'loss' "
                                             "GROUP BY run_id")).all())
    engine.dispose()
    return found


def test_a_backup_taken_while_two_processes_write_is_whole_and_restores(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    with Notebook(url) as notebook:
        runs = [notebook.create_run({"n": i}, name=f"writer {i}") for i in range(2)]
    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(r), str(stop)], cwd=ROOT) for r in runs]
    try:
        wait_for(lambda: all(committed_steps(url).get(r, 0) >= 500 for r in runs), 120, "both writers to commit")
        before = committed_steps(url)
        made = backup(url, tmp_path / "backup.db")
        assert all(w.poll() is None for w in writers)  # both were still writing while it was taken
    finally:
        stop.touch()
        for writer in writers:
            writer.wait(timeout=60)
    assert all(w.returncode == 0 for w in writers)
    copy = sqlite3.connect(made.path)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    for run_id in runs:
        steps = [s for (s,) in copy.execute("SELECT step FROM metrics WHERE run_id = ? AND key = 'loss' "
                                            "ORDER BY step", (run_id,))]
        assert steps[: before[run_id]] == list(range(1, before[run_id] + 1))  # every row committed before it
    copy.close()
    manifest = json.loads(made.manifest.read_text())
    assert manifest["rows"]["runs"] == 2 and manifest["rows"]["metrics"] >= 2 * sum(before.values())
    restored_url = f"sqlite:///{tmp_path / 'restored.db'}"
    restore(made.path, restored_url)
    with Notebook(restored_url) as restored:
        assert [r.name for r in restored.list_runs()] == ["writer 1", "writer 0"]
        steps, values = restored.metric_history(runs[0], "loss")
        assert len(steps) >= before[runs[0]] and values[0] == 1.0
    with pytest.raises(BackupError, match="exists: restore over it with --replace"):
        restore(made.path, restored_url)


def test_backups_into_a_folder_keep_the_newest_and_come_when_due(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    with Notebook(url) as notebook:
        run_id = notebook.create_run({}, name="kept")
        notebook.add_checkpoint(run_id, 5, str(tmp_path / "gone.pt"))
    folder = tmp_path / "backups"
    made = [backup_into(url, folder, keep=2) for _ in range(3)]
    assert backups_in(folder) == [m.path for m in made[1:]]
    assert made[-1].artifacts == 1 and made[-1].missing == 1  # the manifest says the checkpoint is not here
    assert backup_if_due(url, folder, keep=2, every=dt.timedelta(hours=24)) is None  # the newest is fresh
    assert backup_if_due(url, folder, keep=2, every=dt.timedelta(0)) is not None


def test_a_postgresql_notebook_backs_up_with_pg_dump_and_restores(tmp_path):
    if not PG_URL:
        missing_service("PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL (as .ci/run does)")
    source, drop_source = fresh_postgres_database()
    target, drop_target = fresh_postgres_database()
    try:
        with Notebook(source) as notebook:
            run_id = notebook.create_run({"k": 1}, name="on postgres")
            notebook.log_metrics(run_id, 1, {"loss": math.nan, "acc": math.inf})
        made = backup(source, tmp_path / "notebook.dump")
        assert made.rows["metrics"] == 2
        restore(made.path, target)
        with Notebook(target) as restored:
            assert restored.get_run(run_id).name == "on postgres"
            frame = restored.metrics_frame([run_id])
            assert math.isnan(frame.loc[frame.key == "loss", "value"].iloc[0])
    finally:
        drop_source()
        drop_target()


def test_metrics_frame_round_trips_nan_and_infinities(notebook):
    run_id = notebook.create_run({"optim": {"lr": 0.01}}, name="frames")
    logged = [math.nan, math.inf, -math.inf, 0.5]
    for step, value in enumerate(logged, start=1):
        notebook.log_metrics(run_id, step, {"loss": value, "acc": step / 10})
    frame = notebook.metrics_frame([run_id], ["loss"])
    assert list(frame.columns) == ["run_id", "key", "step", "value", "wall_time"]
    assert frame["step"].tolist() == [1, 2, 3, 4]
    values = frame["value"].tolist()
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf, 0.5]
    assert len(notebook.metrics_frame([run_id])) == 8
    runs = notebook.runs_frame()
    assert runs.loc[run_id, "config.optim.lr"] == 0.01 and runs.loc[run_id, "final.loss"] == 0.5
    assert runs.loc[run_id, "status"] == "queued" and "provenance.git_commit" in runs.columns


def test_a_restore_never_replaces_a_notebook_with_a_bad_file_nor_under_a_live_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    with Notebook(url) as notebook:
        notebook.create_run({}, name="precious")
        made = backup(url, tmp_path / "good.db")
        notebook.create_run({}, name="after the backup")  # in the WAL until checkpointed
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"not a database at all" * 100)
        with pytest.raises(BackupError, match="not a SQLite notebook backup"):
            restore(junk, url, replace=True)
        assert [r.name for r in notebook.list_runs()] == ["after the backup", "precious"]  # untouched
        notebook.register_worker("w1", host="host-a", pid=1234, max_parallel=1)
        with pytest.raises(BackupError, match="worker\\(s\\) hold a lease on this notebook \\(on host-a\\)"):
            restore(made.path, url, replace=True)
        notebook.retire_worker("w1")
    restore(made.path, url, replace=True)
    with Notebook(url) as restored:
        assert [r.name for r in restored.list_runs()] == ["precious"]
    with Notebook(f"sqlite:///{tmp_path / 'notebook.db.before-restore'}") as kept:  # nothing committed is lost
        assert [r.name for r in kept.list_runs()] == ["after the backup", "precious"]
