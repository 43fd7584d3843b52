import datetime as dt
import io
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy.exc import DBAPIError

from lab_notes import BadImage, Figure, NoteHeading, Notebook, NotebookSink, NotFound
from tests.helpers import claimed

ROOT = Path(__file__).resolve().parents[2]


def png(colour: int = 128, size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("L", (size, size), colour).save(out, format="PNG")
    return out.getvalue()


def test_runs_lifecycle_and_listing(notebook):
    first = notebook.create_run({"optim": {"lr": 0.1}}, name="baseline", preset="tiny", lint=[{"path": "x"}])
    child = notebook.create_run({"optim": {"lr": 0.2}}, name="higher lr", parent_id=first)
    run = notebook.get_run(child)
    assert (run.status, run.parent_id, run.config, run.attempt) == ("queued", first, {"optim": {"lr": 0.2}}, 0)
    assert notebook.request_stop(first) == "stopped"
    attempt = claimed(notebook, child)
    assert notebook.heartbeat(attempt)
    notebook.set_device(attempt, "cpu (fp32)")
    assert notebook.request_stop(child) == "stop requested"
    assert notebook.stop_requested(child) and not notebook.stop_requested(first)
    notebook.append_log(child, "line one\n")
    notebook.append_log(child, "line two\n")
    notebook.finish_attempt(attempt, "stopped", reason="asked", exit_code=0)
    run = notebook.get_run(child)
    assert run.status == "stopped" and run.started_at <= run.ended_at and run.device == "cpu (fp32)"
    assert run.log_tail == "line one\nline two\n" and run.exit_code == 0 and run.started_at.tzinfo is not None
    assert run.attempt == 1
    assert [r.id for r in notebook.list_runs()] == [child, first]
    assert [r.id for r in notebook.list_runs(status="stopped")] == [child, first]
    assert [r.id for r in notebook.list_runs(search="HIGHER")] == [child]
    assert [r.id for r in notebook.list_runs(search="tiny")] == [first]
    assert notebook.get_run(first).lint == [{"path": "x"}]
    with pytest.raises(NotFound):
        notebook.get_run(999)
    with pytest.raises(ValueError, match="ends as one of"):
        notebook.finish_attempt(attempt, "exploded")


def test_non_finite_values_round_trip_exactly(notebook):
    run = notebook.create_run({}, name="nan")
    notebook.log_metrics(run, 1, {"a": math.nan, "b": math.inf, "c": -math.inf, "d": -0.0, "e": 1e-300})
    notebook.flush()
    values = {key: notebook.metric_history(run, key)[1][0] for key in "abcde"}
    assert math.isnan(values["a"]) and values["b"] == math.inf and values["c"] == -math.inf
    assert values["d"] == 0.0 and values["e"] == 1e-300
    latest = notebook.latest_metrics(run)
    assert math.isnan(latest["a"][1]) and latest["b"] == (1, math.inf)


def test_history_is_incremental_and_keys_are_listed(notebook):
    run = notebook.create_run({}, name="inc")
    for step in range(1, 11):
        notebook.log_metrics(run, step, {"loss/total": 10.0 - step, "lr": 0.1})
    notebook.flush()
    steps, values = notebook.metric_history(run, "loss/total", since_step=7)
    assert steps.tolist() == [8, 9, 10] and values.tolist() == [2.0, 1.0, 0.0]
    assert notebook.metric_keys(run) == ["loss/total", "lr"]
    assert notebook.latest_metrics(run)["loss/total"] == (10, 0.0)


def test_buffered_points_arrive_within_a_second_without_flush(notebook):
    run = notebook.create_run({}, name="buffered")
    notebook.log_metrics(run, 1, {"x": 1.0})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(notebook.metric_history(run, "x")[0]) == 0:
        time.sleep(0.05)
    assert len(notebook.metric_history(run, "x")[0]) == 1


def test_downsampling_keeps_min_max_and_last(notebook):
    run = notebook.create_run({}, name="long")
    rng = np.random.default_rng(0)
    n = 1_000_000 if notebook.dialect == "sqlite" else 200_000
    values = np.cumsum(rng.normal(size=n))
    values[123_457] = values.min() - 50
    values[98_765] = values.max() + 50
    values[77_777] = math.nan
    rows = [(run, "loss", int(s), float(v), 0.0) for s, v in enumerate(values)]
    notebook.log_batch(rows)
    steps, got = notebook.metric_history(run, "loss", max_points=2000)
    assert len(steps) <= 2000 and np.all(np.diff(steps) > 0)
    assert 123_457 in steps and 98_765 in steps and steps[-1] == n - 1 and got[-1] == values[-1]
    assert np.nanmin(got) == np.nanmin(values) and np.nanmax(got) == np.nanmax(values)
    assert 77_777 in steps and np.isnan(got[steps.tolist().index(77_777)])


def test_images_are_validated_and_kept_by_step(notebook):
    run = notebook.create_run({}, name="img")
    notebook.log_image(run, "reconstruction", 10, png(10))
    notebook.log_image(run, "reconstruction", 20, png(20))
    notebook.log_image(run, "reconstruction", 20, png(30))  # a second one at the same step replaces it
    assert notebook.image_steps(run, "reconstruction") == [10, 20]
    assert notebook.get_image(run, "reconstruction", 20) == png(30)
    assert notebook.image_keys(run) == ["reconstruction"]
    with pytest.raises(BadImage, match="not a readable image"):
        notebook.log_image(run, "reconstruction", 30, b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(BadImage, match="cap"):
        notebook.log_image(run, "reconstruction", 30, b"\x00" * (9 * 1024 * 1024))
    with pytest.raises(NotFound):
        notebook.get_image(run, "reconstruction", 30)


def test_checkpoints_are_recorded(notebook):
    run = notebook.create_run({}, name="ckpt")
    notebook.add_checkpoint(run, 100, "/runs/1/step_100.pt")
    notebook.add_checkpoint(run, 50, "/runs/1/step_50.pt")
    assert [(c.step, c.path) for c in notebook.checkpoints(run)] == [(50, "/runs/1/step_50.pt"),
                                                                     (100, "/runs/1/step_100.pt")]


def test_notes_with_runs_figures_tags_search_update_delete(notebook):
    run = notebook.create_run({}, name="r")
    spec = {"kind": "line", "metric": "loss/total", "run": run}
    first = notebook.add_note(dt.date(2022, 12, 14), "NaN at episode 3999", "InfoNCE 出现负值，然后 NaN。",
                              run_ids=[run], figures=[Figure("loss.png", png(), "the loss", spec)], tags=["infonce"])
    second = notebook.add_note(dt.date(2022, 12, 8), "baseline", "disc + ViT-1，准确率是disc计算的")
    note = notebook.get_note(first)
    assert note.run_ids == [run] and note.tags == ["infonce"] and note.figures[0].chart_spec == spec
    assert note.figures[0].image == png()
    assert [n.id for n in notebook.list_notes()] == [second, first]
    assert [n.id for n in notebook.list_notes(newest_first=True)] == [first, second]
    assert [n.id for n in notebook.list_notes(run_id=run)] == [first]
    assert [n.id for n in notebook.search_notes("准确率")] == [second]
    assert [n.id for n in notebook.search_notes("NaN")] == [first]
    assert [n.id for n in notebook.search_notes('负值 "quoted')] == []
    notebook.update_note(first, title="diverged", figures=[])
    assert notebook.get_note(first).title == "diverged" and notebook.get_note(first).figures == []
    assert [n.id for n in notebook.search_notes("diverged")] == [first]
    notebook.delete_note(second)
    assert [n.id for n in notebook.list_notes()] == [first]
    with pytest.raises(BadImage):
        notebook.add_note(dt.date(2023, 1, 1), "bad", "", figures=[Figure("x.png", b"not an image")])
    assert len(notebook.list_notes()) == 1  # nothing partial


def test_notebook_sink_speaks_the_engine_protocol(notebook):
    run = notebook.create_run({}, name="sink")
    sink = NotebookSink(notebook, claimed(notebook, run))
    sink.log_event("started", {"device": "cpu", "precision": "fp32"})
    sink.log_metrics(1, {"loss/total": 1.0})
    sink.log_image("reconstruction", 1, png())
    sink.log_event("checkpoint", {"step": 1, "path": "/tmp/x.pt"})
    assert not sink.stop_requested()
    notebook.request_stop(run)
    deadline = time.monotonic() + 5
    while not sink.stop_requested():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    report = {"reason": "loss/total is nan", "first_step": 2, "incidents": []}
    sink.log_event("status", {"status": "diverged", "step": 2, "report": report})
    stored = notebook.get_run(run)
    assert stored.status == "diverged" and stored.divergence_report == report and stored.device == "cpu (fp32)"
    assert notebook.metric_history(run, "loss/total")[1].tolist() == [1.0]
    assert notebook.checkpoints(run)[0].step == 1 and notebook.image_steps(run, "reconstruction") == [1]
    # its journal entry is the run's draft, written once it has ended (engine.journal_drafts): no note of its own
    assert notebook.list_notes(run_id=run) == [] and [e.run_id for e in notebook.endings_without_draft()] == [run]


def test_reopening_keeps_data_and_schema_is_at_head(notebook_url):
    with Notebook(notebook_url) as notebook:
        run = notebook.create_run({"k": 1}, name="persist")
        notebook.log_metrics(run, 1, {"x": 2.0})
    with Notebook(notebook_url) as again:  # close flushed the buffer; the upgrade on open is a no-op
        assert again.get_run(run).name == "persist"
        assert again.metric_history(run, "x")[1].tolist() == [2.0]
        with again._reader.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0008"


def test_a_notebook_from_the_first_schema_upgrades_with_its_data(notebook_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from lab_notes.store import MIGRATIONS

    engine = create_engine(notebook_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO runs (name, config, status, created_at, stop_requested, lint, log_tail) "
            "VALUES ('old run', '{}', 'completed', '2023-01-12 10:00:00', false, '[]', '')")
    engine.dispose()
    with Notebook(notebook_url) as notebook:
        (run,) = notebook.list_runs()
        assert (run.name, run.status, run.worker_id) == ("old run", "completed", None)
        notebook.register_worker("w", host="h", pid=1, max_parallel=1)  # the new table is there
        assert [w.id for w in notebook.live_workers(60)] == ["w"]


def _write_points(url: str, run_id: int, count: int) -> None:
    notebook = Notebook(url)
    for step in range(count):
        notebook.log_metrics(run_id, step, {"loss": float(step)})
    notebook.close()


def test_concurrent_writers_and_a_polling_reader_lose_nothing(notebook, notebook_url):
    writers, points = 4, 20_000
    runs = [notebook.create_run({}, name=f"writer {i}") for i in range(writers)]
    # Plain subprocesses: a multiprocessing child would re-import whatever module is __main__ in this process.
    code = "import sys; from tests.lab_notes.test_store import _write_points; _write_points(sys.argv[1], {}, {})"
    processes = [subprocess.Popen([sys.executable, "-c", code.format(run, points), notebook_url], cwd=ROOT)
                 for run in runs]
    seen = {run: [] for run in runs}
    cursor = {run: None for run in runs}
    deadline = time.monotonic() + 240

    def poll() -> None:
        for run in runs:
            steps, _ = notebook.metric_history(run, "loss", since_step=cursor[run])
            if len(steps):
                seen[run].extend(steps.tolist())
                cursor[run] = int(steps[-1])

    while any(p.poll() is None for p in processes):
        assert time.monotonic() < deadline, "writers did not finish in time"
        poll()
        time.sleep(0.05)
    poll()
    assert [p.returncode for p in processes] == [0] * writers  # a "database is locked" would fail a writer
    for run in runs:
        assert seen[run] == list(range(points))


@pytest.mark.parametrize("rows_per_statement", [512, 4])
def test_points_written_many_to_a_statement_come_back_exact_and_in_order(notebook, monkeypatch, rows_per_statement):
    # 1,337 points: SQLite writes them as INSERTs of 512, 256, ... 1 rows (or at most 4), a partial one last
    monkeypatch.setattr("lab_notes.metrics.ROWS_PER_STATEMENT", rows_per_statement)
    run = notebook.create_run({}, name="many a statement")
    values = [math.nan if i % 97 == 0 else math.inf if i % 89 == 0 else -math.inf if i % 83 == 0 else i / 7 + 1e-17
              for i in range(1337)]
    for step, value in enumerate(values):
        notebook.log_metrics(run, step, {"x": value, "y": -value})
    notebook.log_batch([(run, "z", step, value, 0.0) for step, value in enumerate(values)])  # the unfenced path
    notebook.flush()
    for key, sign in (("x", 1), ("y", -1), ("z", 1)):
        steps, stored = notebook.metric_history(run, key)
        assert steps.tolist() == list(range(1337))
        assert [repr(v) for v in stored.tolist()] == [repr(sign * v) for v in values]


def test_a_batch_with_a_row_of_the_wrong_length_is_refused_whole(tmp_path):
    # the rows are flattened into one INSERT: a short row and a long one must not shift values into each other
    with Notebook(f"sqlite:///{tmp_path / 'notebook.db'}") as notebook:
        run = notebook.create_run({}, name="uneven")
        with pytest.raises(DBAPIError, match="bindings"):
            notebook.log_batch([(run, "u", 1, 1.0, 0.0, 9.0), (run, "u", 2, 2.0)])
        assert notebook.metric_history(run, "u")[0].tolist() == []
        assert notebook.metric_keys(run) == []


def test_a_failed_flush_keeps_the_points_for_the_next_one(notebook, monkeypatch):
    run = notebook.create_run({}, name="retry")
    real_sql = notebook._insert_metrics_sql
    monkeypatch.setattr(notebook, "_insert_metrics_sql", real_sql.replace("metrics", "no_such_table"))
    notebook.log_metrics(run, 1, {"x": 1.0})  # every flush now fails, the background one included
    with pytest.raises(DBAPIError, match="no_such_table"):
        notebook.flush()
    monkeypatch.setattr(notebook, "_insert_metrics_sql", real_sql)
    notebook.flush()
    assert notebook.metric_history(run, "x")[1].tolist() == [1.0]


def test_rollups_summarise_each_bucket_like_a_brute_force_pass():
    import random

    from lab_notes.series import BUCKET_STEPS, merge, summarise

    rng = random.Random(3)
    rows = [(1, "k", step, rng.choice([None, math.inf, -math.inf] + [rng.uniform(-5, 5) for _ in range(20)]))
            for step in range(3 * BUCKET_STEPS + 17)]
    rng.shuffle(rows)
    halves = summarise(rows[: len(rows) // 2]), summarise(rows[len(rows) // 2:])
    merged = {w: merge(halves[0][w], halves[1][w]) if w in halves[0] and w in halves[1]
              else halves[0].get(w) or halves[1][w] for w in halves[0].keys() | halves[1].keys()}
    for summaries in (summarise(rows), merged):
        for (_, _, bucket), summary in summaries.items():
            points = [(s, v) for _, _, s, v in rows if s // BUCKET_STEPS == bucket]
            finite = [(s, v) for s, v in points if v is not None and math.isfinite(v)]
            assert summary["n"] == len(points)
            assert (summary["min_step"], summary["min_value"]) == min(finite, key=lambda p: p[1])
            assert (summary["max_step"], summary["max_value"]) == max(finite, key=lambda p: p[1])
            assert summary["last_step"] == max(s for s, _ in points)
            assert summary["nan_step"] == min((s for s, v in points if v is None), default=None)
            assert summary["posinf_step"] == min((s for s, v in points if v == math.inf), default=None)
            assert summary["neginf_step"] == min((s for s, v in points if v == -math.inf), default=None)


def test_resumed_runs_recompute_their_rollups(notebook):
    run = notebook.create_run({}, name="resumed")
    notebook.log_batch([(run, "loss", step, float(step), 0.0) for step in range(1, 3001)])
    notebook.discard_after(run, 1500)
    notebook.log_batch([(run, "loss", step, -1.0, 0.0) for step in range(1501, 1601)])
    steps, values = notebook.metric_history(run, "loss", max_points=50)
    assert steps[-1] == 1600 and values.min() == -1.0 and values.max() == 1500.0
    assert notebook.latest_metrics(run)["loss"] == (1600, -1.0)


def test_note_headings_list_notes_without_their_figures(notebook):
    old = notebook.add_note(dt.date(2022, 12, 8), "", "disc + ViT-1，准确率是disc计算的", figures=[Figure("a.png", png())])
    new = notebook.add_note(dt.date(2023, 1, 12), "AE", "two decoders")
    undated = notebook.add_note(None, "", "preamble")
    assert notebook.note_headings() == [NoteHeading(new, dt.date(2023, 1, 12), "AE", "two decoders"),
                                        NoteHeading(old, dt.date(2022, 12, 8), "", "disc + ViT-1，准确率是disc计算的"),
                                        NoteHeading(undated, None, "", "preamble")]


def test_a_page_of_runs_is_one_query_sorted_and_counted_by_the_database(notebook):
    from sqlalchemy import event

    ids = [notebook.create_run({"schedule": {"episodes": 10}}, name=f"run {i}", preset="p") for i in range(7)]
    for rank, run_id in enumerate(ids[:4]):
        for step in range(1, 6):
            notebook.log_metrics(run_id, step, {"loss/total": float(rank + 1) / step, "images_per_s": 10.0 * rank})
    notebook.log_metrics(ids[2], 5, {"eval/acc/prototype": 0.8})
    notebook.flush()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(notebook._reader, "before_cursor_execute", listener)
    try:
        page = notebook.runs_page(sort="loss", limit=3)
    finally:
        event.remove(notebook._reader, "before_cursor_execute", listener)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1 and page.total == 7
    assert [s.run.id for s in page.summaries] == ids[:3]  # lowest last loss first
    first = page.summaries[0]
    assert (first.step, first.loss, first.progress, first.images_per_s) == (5, 0.2, 0.5, 0.0)
    assert notebook.runs_page(sort="accuracy", limit=1).summaries[0].accuracy == 0.8
    assert [s.run.id for s in notebook.runs_page(sort="loss", limit=3, offset=3).summaries] == [ids[3], ids[6], ids[5]]
    assert notebook.runs_page(search="run 4").total == 1 and notebook.runs_page(offset=100).total == 7
