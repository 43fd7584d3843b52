"""The tracking client in-process, on SQLite and PostgreSQL: a script's run is an ordinary run; how its block ends
sets its status; values are kept exactly; bad input is refused by name and loses nothing already accepted; a
launched script attaches to its run."""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import lab_notes
from lab_notes import BadValue, Notebook, Refused, RunEnded, start_run
from lab_notes.keys import SNAPSHOT_HYPERPARAMETERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def not_launched(monkeypatch):
    """These tests make their own runs unless a test sets the launch variables itself."""
    for name in ("LAB_RUN_ID", "LAB_ATTEMPT", "LAB_ATTEMPT_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def history(notebook: Notebook, run_id: int, key: str) -> list[tuple[int, float]]:
    steps, values = notebook.metric_history(run_id, key)
    return list(zip(steps.tolist(), values.tolist()))


def same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    """Equal point lists, NaN equal to NaN (and ±inf to itself, exactly)."""
    return len(a) == len(b) and all(s == t and (v == w or (math.isnan(v) and math.isnan(w)))
                                    for (s, v), (t, w) in zip(a, b))


def test_a_script_run_is_an_ordinary_run_with_its_metrics_image_and_note(notebook_url):
    image = np.zeros((16, 24, 3), dtype=np.uint8)
    image[:, :12] = 255
    with start_run(name="my idea", config={"lr": 1e-3, "layers": [2, 2]}, url=notebook_url) as run:
        run.log({"loss": 0.7, "acc/heldout": 0.5}, step=10)
        run.log({"loss": math.nan, "grad_norm": math.inf}, step=11)
        run.log({"grad_norm": -math.inf, "loss": 0.25})  # step: one after the last, 12
        run.log_image("reconstruction", image, step=10)
        run.log_image("grey", np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), step=10)
        run.log_image("pil", Image.new("RGB", (8, 8), "red"), step=11)
        run.log_image("pil float", Image.new("F", (8, 8), 0.5), step=11)  # one number a pixel, 0..1: mid grey
        note_id = run.note("what I noticed\n\nthe loss went NaN at step 11")
        assert lab_notes.Notebook(notebook_url).get_run(run.id).status == "running"
    with Notebook(notebook_url) as notebook:
        stored = notebook.get_run(run.id)
        assert (stored.status, stored.name, stored.preset, stored.config) == (
            "completed", "my idea", None, {"lr": 1e-3, "layers": [2, 2]})
        assert stored.started_at is not None and stored.ended_at is not None and stored.attempt == 1
        assert run.id in [r.id for r in notebook.list_runs()]
        assert same(history(notebook, run.id, "loss"), [(10, 0.7), (11, math.nan), (12, 0.25)])
        assert history(notebook, run.id, "grad_norm") == [(11, math.inf), (12, -math.inf)]
        assert history(notebook, run.id, "acc/heldout") == [(10, 0.5)]
        assert sorted(notebook.image_keys(run.id)) == ["grey", "pil", "pil float", "reconstruction"]
        assert np.asarray(Image.open(io.BytesIO(notebook.get_image(run.id, "pil float", 11)))).max() == 128
        pixels = np.asarray(Image.open(io.BytesIO(notebook.get_image(run.id, "reconstruction", 10))))
        assert np.array_equal(pixels, image)
        note = notebook.get_note(note_id)
        assert note.run_ids == [run.id] and note.entry_date == dt.date.today()
        assert note.title == "what I noticed" and "NaN at step 11" in note.body


def test_an_exception_fails_the_run_with_the_tracebacks_last_lines(notebook_url):
    with pytest.raises(ZeroDivisionError):
        with start_run(name="broken", url=notebook_url) as run:
            run.log({"loss": 1.0}, step=0)
            1 / 0
    with Notebook(notebook_url) as notebook:
        stored = notebook.get_run(run.id)
        assert stored.status == "failed"
        assert "ZeroDivisionError: division by zero" in stored.status_reason
        assert history(notebook, run.id, "loss") == [(0, 1.0)]  # what came before the error is kept


def test_ctrl_c_in_the_block_stops_the_run(notebook_url):
    with pytest.raises(KeyboardInterrupt):
        with start_run(name="interrupted", url=notebook_url) as run:
            run.log({"loss": 1.0}, step=0)
            raise KeyboardInterrupt
    with Notebook(notebook_url) as notebook:
        assert (notebook.get_run(run.id).status, notebook.get_run(run.id).status_reason) == (
            "stopped", "interrupted (Ctrl-C)")


class TensorLike:
    """What the client sees of a torch tensor of several elements, without torch: `numel()` and `__float__`."""

    def numel(self) -> int:
        return 3

    def __float__(self) -> float:
        raise TypeError("only one element tensors can be converted to Python scalars")


BAD_VALUES = [
    ({"loss": "0.5"}, "metric 'loss': '0.5' is text"),
    ({"loss": np.array("0.5")}, "metric 'loss': '0.5' is text"),
    ({"loss": TensorLike()}, "metric 'loss': a value must be one number, not 3 elements"),
    ({"loss": np.ones((2, 2))}, "metric 'loss': a value must be one number, not 4 elements"),
    ({"loss": None}, "metric 'loss': NoneType"),
    ({"": 1.0}, "metric key '': a key must not be empty"),
    ({"k" * 201: 1.0}, "201 characters is over the 200-character cap"),
    ({7: 1.0}, "metric key 7: a key must be a string"),
    ({"a\x00b": 1.0}, "metric key 'a\\x00b': a key must not hold a NUL character"),  # PostgreSQL cannot store it
    ({"bad\udc80key": 1.0}, "not valid Unicode text (a lone surrogate)"),  # no database can encode it
    ({"huge": 10**400}, "metric 'huge': 1000000000000000000000000000000000000000… is too large for a float"),
]
BAD_IMAGES = [
    (np.zeros((4, 4, 2), np.uint8), "image 'img': shape (4, 4, 2) is not (H, W)"),
    (np.zeros((2, 4, 4, 3), np.uint8), "image 'img': shape (2, 4, 4, 3)"),
    (np.zeros((4, 4), np.int64), "image 'img': dtype int64 is not uint8"),
    (np.full((4, 4), 255.0), "image 'img': float pixels must lie in 0..1"),
    (np.zeros((0, 4), np.uint8), "has no pixels"),
    ([[0, 1], [1, 0]], "image 'img': a numpy array (H, W[, C]) or a PIL image, not list"),
    (Image.new("I;16", (4, 4), 1000), "image 'img': dtype uint16 is not uint8"),  # convert() would clip it to 255
    (Image.new("F", (4, 4), 2.0), "image 'img': float pixels must lie in 0..1"),
]


def test_bad_input_is_refused_naming_the_problem_and_nothing_accepted_is_lost(notebook_url):
    with start_run(name="careless", url=notebook_url) as run:
        for step, (values, message) in enumerate(BAD_VALUES):
            run.log({"loss": float(step)}, step=step)
            with pytest.raises(BadValue, match=_literal(message)):
                run.log({"fine": 1.0, **values}, step=step)  # taken whole or not at all
        for image, message in BAD_IMAGES:
            with pytest.raises(BadValue, match=_literal(message)):
                run.log_image("img", image, step=0)
        with pytest.raises(BadValue, match="step -1: steps count from 0"):
            run.log({"loss": 1.0}, step=-1)
        for too_far in (2**31, 2**63):  # over PostgreSQL's INTEGER and SQLite's: either would fail its whole batch
            with pytest.raises(BadValue, match=f"step {too_far}: steps count from 0 up to 2,147,483,647"):
                run.log({"loss": 1.0}, step=too_far)
            with pytest.raises(BadValue, match=f"step {too_far}: steps count from 0 up to 2,147,483,647"):
                run.log_image("img", np.zeros((4, 4), np.uint8), step=too_far)
        for refused, message in [(lambda: run.note("text", title="T" * 501), "501 characters is over the 500"),
                                 (lambda: run.note("a \x00 b"), "must not hold a NUL character")]:
            with pytest.raises(BadValue, match=message):
                refused()
        with pytest.raises(BadValue, match="step 'x': a step is a whole number"):
            run.log({"loss": 1.0}, step="x")  # type: ignore[arg-type]
    with Notebook(notebook_url) as notebook:
        assert history(notebook, run.id, "loss") == [(s, float(s)) for s in range(len(BAD_VALUES))]
        assert "fine" not in notebook.metric_keys(run.id) and notebook.image_keys(run.id) == []
        assert notebook.get_run(run.id).status == "completed"


def test_logging_after_the_run_ended_is_refused(notebook_url):
    with start_run(name="over", url=notebook_url) as run:
        run.log({"loss": 1.0}, step=0)
    for late in (lambda: run.log({"loss": 2.0}, step=1), lambda: run.log_image("img", np.zeros((4, 4), np.uint8)),
                 lambda: run.note("too late")):
        with pytest.raises(RunEnded, match=f"run {run.id} has ended \\(completed\\)"):
            late()
    with Notebook(notebook_url) as notebook:
        assert history(notebook, run.id, "loss") == [(0, 1.0)]


def launched(notebook: Notebook, monkeypatch) -> lab_notes.Attempt:
    """A run queued and claimed as a worker does, its attempt in this process's environment (as a launch sets)."""
    notebook.create_run({"command": ["python", "train.py"]}, name="launched script")
    attempt = notebook.claim_next_run("worker-1")
    assert attempt is not None
    monkeypatch.setenv("LAB_RUN_ID", str(attempt.run_id))
    monkeypatch.setenv("LAB_ATTEMPT", str(attempt.number))
    monkeypatch.setenv("LAB_ATTEMPT_TOKEN", attempt.token)
    return attempt


def test_a_launched_script_attaches_to_its_run_and_leaves_the_status_to_its_launcher(notebook, notebook_url,
                                                                                     monkeypatch):
    attempt = launched(notebook, monkeypatch)
    with start_run(name="ignored", config={"lr": 0.1}, url=notebook_url) as run:
        assert (run.id, run.name, run.owns_run) == (attempt.run_id, "launched script", False)
        run.log({"loss": 0.5}, step=1)
    stored = notebook.get_run(attempt.run_id)
    assert (stored.status, stored.config) == ("running", {"command": ["python", "train.py"]})
    assert history(notebook, attempt.run_id, "loss") == [(1, 0.5)]
    assert notebook.snapshot(attempt.run_id, SNAPSHOT_HYPERPARAMETERS, 0) == {"lr": 0.1}
    assert notebook.list_runs() == [stored]  # no second run was made


@pytest.mark.parametrize("how", ["queued", "completed", "wrong token"])
def test_attaching_to_a_run_that_is_not_running_is_refused_with_its_status(notebook, notebook_url, monkeypatch,
                                                                           how):
    attempt = launched(notebook, monkeypatch)
    if how == "completed":
        notebook.finish_attempt(attempt, "completed")
    elif how == "queued":
        queued = notebook.create_run({}, name="waiting")
        monkeypatch.setenv("LAB_RUN_ID", str(queued))
    else:
        monkeypatch.setenv("LAB_ATTEMPT_TOKEN", "0" * 32)
    expected = {"queued": "run \\d+ is queued, not running", "completed": "run \\d+ is completed, not running",
                "wrong token": "with this token does not own run"}[how]
    with pytest.raises(Refused, match=f"LAB_RUN_ID=\\d+: {expected}" if how != "wrong token" else expected):
        start_run(url=notebook_url)


def test_a_malformed_launch_environment_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("LAB_RUN_ID", "12")
    monkeypatch.setenv("LAB_ATTEMPT", "first")
    with pytest.raises(BadValue, match="LAB_ATTEMPT='first'"):
        start_run(url=f"sqlite:///{tmp_path / 'n.db'}")


def test_importing_the_client_imports_no_torch():
    found = subprocess.run([sys.executable, "-c", "import sys, lab_notes; print(sorted({'torch', 'lightning'} & "
                            "set(sys.modules)))"], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert found.stdout.strip() == "[]"


def _literal(text: str) -> str:
    import re
    return re.escape(text)


def test_a_name_the_notebook_cannot_store_is_refused_before_a_run_is_made(notebook_url):
    with pytest.raises(BadValue, match="start_run: name 'nnnn.*201 characters is over the 200-character cap"):
        start_run(name="n" * 201, url=notebook_url)
    with Notebook(notebook_url) as notebook:
        assert notebook.list_runs() == []


def test_only_the_rows_the_database_refuses_are_dropped_and_counted_and_the_run_ends(notebook_url, monkeypatch,
                                                                                    capfd):
    """A write the database refuses (not an outage: it would fail again) must not take the good rows of its batch
    with it, block every point after it, kill the writer, or leave the run running. The door refuses what is
    known to fail; this stands for what gets past it."""
    from sqlalchemy.exc import DataError

    from lab_notes.metrics import MetricsStore

    real_write = MetricsStore._write_points

    def refusing_poison(self, connection, rows):
        if any(row[1] == "poison" for row in rows):
            raise DataError("INSERT INTO metrics …", {}, Exception("value out of range"))
        real_write(self, connection, rows)

    monkeypatch.setattr(MetricsStore, "_write_points", refusing_poison)
    with start_run(name="refused", url=notebook_url) as run:
        for step in range(1000):
            run.log({"loss": float(step)}, step=step)
        run.log({"poison": 1.0}, step=1000)
        for step in range(1001, 2000):
            run.log({"loss": float(step)}, step=step)
    assert (run.status, run.refused, run.unwritten) == ("completed", 1, 1)
    assert "the notebook refused 1 points or images (DataError" in capfd.readouterr().err
    with Notebook(notebook_url) as notebook:
        assert history(notebook, run.id, "loss") == [(s, float(s)) for s in range(2000) if s != 1000]
        assert notebook.get_run(run.id).status == "completed"


def test_flush_beside_the_writer_thread_loses_nothing(notebook_url, monkeypatch):
    """The script's flush() and the writer thread once drained the same queue at once: points were lost."""
    import lab_notes.client_run

    monkeypatch.setattr(lab_notes.client_run, "FLUSH_SECONDS", 0.001)  # the writer always at work
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the two threads interleave within each other's loops
    try:
        with start_run(name="two writers", url=notebook_url) as run:
            for round_ in range(20):
                for step in range(round_ * 2000, (round_ + 1) * 2000):
                    run.log({"loss": float(step)}, step=step)
                run.flush()
    finally:
        sys.setswitchinterval(interval)
    assert (run.status, run.unwritten) == ("completed", 0)
    with Notebook(notebook_url) as notebook:
        assert len(history(notebook, run.id, "loss")) == 40_000


CAUGHT_THEN_ON = "try:\n    sys.exit(2)\nexcept SystemExit:\n    run.log({'loss': 0.5}, step=1)\n"


@pytest.mark.parametrize("status, outcome", [("3", ("failed", "the script exited with 3")),
                                             ("'no data'", ("failed", "the script exited with 'no data'")),
                                             ("0", ("completed", None)),
                                             ("caught", ("completed", None))])
def test_sys_exit_outside_a_block_ends_the_run_by_its_status(tmp_path, status, outcome):
    """Python calls no hook for SystemExit, so a run left open would end completed whatever the exit status; an
    exit the script caught, and went on logging after, does not end it."""
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    code = ("import sys, lab_notes\nrun = lab_notes.start_run(name='exits')\nrun.log({'loss': 1.0}, step=0)\n" +
            (CAUGHT_THEN_ON if status == "caught" else f"sys.exit({status})\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    finished = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={**env, "LAB_NOTEBOOK_URL": url,
                              "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120)
    assert finished.returncode == {"3": 3, "'no data'": 1}.get(status, 0), finished.stderr
    with Notebook(url) as notebook:
        (run,) = notebook.list_runs()
        assert (run.status, run.status_reason) == outcome
        assert history(notebook, run.id, "loss") == [(0, 1.0)] + ([(1, 0.5)] if status == "caught" else [])


def test_a_write_that_fails_for_another_reason_still_lets_the_run_end(notebook_url, monkeypatch, capfd):
    """Neither an outage nor a refusal (a bug, say): what could not be written is counted, and the status is still
    set (the status is written in one transaction with what waits, which would fail it again)."""
    from lab_notes.metrics import MetricsStore

    def broken(self, connection, rows):
        raise RuntimeError("a bug in the writer")

    with start_run(name="broken writer", url=notebook_url) as run:
        run.log({"loss": 1.0}, step=0)
        monkeypatch.setattr(MetricsStore, "_write_points", broken)
        run.log({"loss": 0.5}, step=1)
    assert (run.status, run.unwritten) == ("completed", 2)
    assert "writing failed (RuntimeError: a bug in the writer)" in capfd.readouterr().err
    with Notebook(notebook_url) as notebook:
        assert notebook.get_run(run.id).status == "completed"
