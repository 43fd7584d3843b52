"""A run's life has one owner (lab_notes.runs): every status change is a compare-and-set, every write of a run
process carries its attempt, and what belongs together is written together. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from lab_notes import Attempt, LeaseLost, Notebook, Refused, Snapshot
from lab_notes.runs import TRANSITIONS
from tests.helpers import claimed
from tests.lab_notes.test_store import png


def running(notebook: Notebook, name: str = "run") -> tuple[int, Attempt]:
    run_id = notebook.create_run({}, name=name)
    return run_id, claimed(notebook, run_id)


def test_the_transition_table_is_the_one_in_the_design():
    assert TRANSITIONS["running"] == ("queued",)
    assert set(TRANSITIONS["deleted"]) == {"queued", "completed", "stopped", "diverged", "failed"}
    assert set(TRANSITIONS["queued"]) == {"stopped", "failed", "diverged"}
    assert all(TRANSITIONS[end] == ("running",) for end in ("completed", "diverged", "failed"))


def test_an_ended_run_never_changes_its_ending(notebook):
    run_id, attempt = running(notebook)
    # The reaper got there first. (-60: every running attempt counts as stale, even one whose heartbeat has the
    # same millisecond as the sweep; 0 made this test flaky.)
    assert notebook.fail_stale_attempts(-60) == [run_id]
    with pytest.raises(LeaseLost):
        notebook.finish_attempt(attempt, "completed")  # a late "completed" from the old process is refused
    run = notebook.get_run(run_id)
    assert run.status == "failed" and "heartbeat stale" in run.status_reason
    with pytest.raises(Refused, match=f"run {run_id} is failed: cannot stop it"):
        notebook.request_stop(run_id)
    with pytest.raises(Refused, match="is queued: cannot resume it"):
        queued = notebook.create_run({}, name="queued")
        notebook.resume(queued, 0)


def test_a_stale_attempts_writes_are_all_refused(notebook):
    run_id, old = running(notebook)
    notebook.log_metrics(run_id, 1, {"loss": 1.0}, attempt=old)
    notebook.flush()
    notebook.fail_stale_attempts(-60)
    notebook.resume(run_id, 0)
    new = claimed(notebook, run_id)
    assert (new.number, old.number) == (2, 1) and new.token != old.token
    assert not notebook.heartbeat(old) and notebook.heartbeat(new)
    notebook.log_metrics(run_id, 1, {"loss": 2.0}, attempt=old)
    notebook.log_metrics(run_id, 1, {"loss": 3.0}, attempt=new)
    with pytest.raises(LeaseLost, match="attempt 1 no longer owns"):
        notebook.flush()
    for write in (lambda: notebook.log_image(run_id, "r", 1, png(), attempt=old),
                  lambda: notebook.add_checkpoint(run_id, 1, "/x.pt", attempt=old),
                  lambda: notebook.set_device(old, "cpu"),
                  lambda: notebook.add_divergence_incident(old, {"step": 1}),
                  lambda: notebook.finish_attempt(old, "completed")):
        with pytest.raises(LeaseLost):
            write()
    assert notebook.metric_history(run_id, "loss")[1].tolist() == [3.0]  # the new attempt's, once
    assert notebook.image_steps(run_id, "r") == [] and notebook.checkpoints(run_id) == []
    assert notebook.get_run(run_id).status == "running"


def test_stop_is_queued_to_stopped_only_while_queued(notebook):
    queued = notebook.create_run({}, name="waiting")
    assert notebook.request_stop(queued) == "stopped"
    assert notebook.get_run(queued).status_reason == "stopped before it started"
    assert notebook.claim_next_run("w") is None  # a stopped run is never claimed
    run_id, attempt = running(notebook)
    assert notebook.request_stop(run_id) == "stop requested"
    assert notebook.get_run(run_id).status == "running"  # never `stopped` while it trains
    notebook.finish_attempt(attempt, "stopped")
    assert notebook.get_run(run_id).status == "stopped"


def test_stop_racing_a_claim_ends_never_started_or_stop_requested(notebook_url):
    """Many rounds of a stop and a claim sent at once from two threads with their own connections."""
    books = [Notebook(notebook_url), Notebook(notebook_url)]
    try:
        outcomes = set()
        for round_ in range(25):
            run_id = books[0].create_run({}, name=f"race {round_}")
            results: dict[str, object] = {}
            go = threading.Barrier(2)

            def stop() -> None:
                go.wait()
                results["stop"] = books[0].request_stop(run_id)

            def claim() -> None:
                go.wait()
                results["claim"] = books[1].claim_next_run("w")

            threads = [threading.Thread(target=stop), threading.Thread(target=claim)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            run = books[0].get_run(run_id)
            if results["claim"] is None:
                assert results["stop"] == "stopped" and run.status == "stopped" and run.attempt == 0
            else:
                assert results["stop"] == "stop requested" and run.status == "running" and run.stop_requested
                books[1].finish_attempt(results["claim"], "stopped")  # as the run does, with its checkpoint
            outcomes.add(results["stop"])
    finally:
        for notebook in books:
            notebook.close()
    assert outcomes <= {"stopped", "stop requested"}


def test_diverged_and_its_note_are_written_together_or_not_at_all(notebook, monkeypatch):
    run_id, attempt = running(notebook)
    notebook.log_metrics(run_id, 7, {"loss/total": float("nan")}, attempt=attempt)
    report = {"reason": "loss/total is nan", "first_step": 7, "incidents": []}

    def broken_note(*_args, **_kwargs):
        raise RuntimeError("the note could not be written")

    monkeypatch.setattr(notebook, "_insert_note", broken_note)
    with pytest.raises(RuntimeError):
        notebook.finish_attempt(attempt, "diverged", reason="nan", report=report, note=("t", "b"))
    assert notebook.get_run(run_id).status == "running" and notebook.list_notes(run_id=run_id) == []
    assert notebook.get_run(run_id).divergence_report is None
    monkeypatch.undo()
    notebook.finish_attempt(attempt, "diverged", reason="nan", report=report, note=("Run diverged", "body"))
    run, (note,) = notebook.get_run(run_id), notebook.list_notes(run_id=run_id)
    assert run.status == "diverged" and run.divergence_report == report and note.title == "Run diverged"
    assert note.entry_date == dt.date.today() and note.tags == ["divergence"]
    assert len(notebook.metric_history(run_id, "loss/total")[0]) == 1  # the last buffered point came along


def test_delete_refuses_a_running_run_and_never_reuses_an_id(notebook):
    keep = notebook.create_run({}, name="keep")
    notebook.request_stop(keep)
    run_id, attempt = running(notebook, "newest")
    notebook.log_metrics(run_id, 1, {"loss": 1.0}, attempt=attempt)
    notebook.log_image(run_id, "r", 1, png(), attempt=attempt)
    notebook.add_checkpoint(run_id, 1, "/x.pt", attempt=attempt)
    with pytest.raises(Refused, match="is running: cannot delete it; stop it first"):
        notebook.delete_run(run_id)
    notebook.finish_attempt(attempt, "completed")
    note = notebook.add_note(None, "", "about the run", run_ids=[run_id])
    notebook.delete_run(run_id)
    assert notebook.get_run(run_id).status == "deleted" and [r.id for r in notebook.list_runs()] == [keep]
    assert notebook.metric_keys(run_id) == [] and notebook.metric_history(run_id, "loss")[0].size == 0
    assert notebook.image_keys(run_id) == [] and notebook.checkpoints(run_id) == []
    assert notebook.get_note(note).run_ids == [run_id]  # the journal still says which run it was about
    assert notebook.create_run({}, name="next") > run_id  # the newest id was deleted; it is not handed out again
    with pytest.raises(Refused, match="is deleted"):
        notebook.delete_run(run_id)


def test_resume_discards_what_follows_the_checkpoint_or_everything_without_one(notebook):
    run_id, attempt = running(notebook)
    for step in range(1, 11):
        notebook.log_metrics(run_id, step, {"loss": float(step)}, attempt=attempt)
    notebook.log_image(run_id, "r", 4, png(), attempt=attempt)
    notebook.log_image(run_id, "r", 8, png(), attempt=attempt)
    notebook.add_checkpoint(run_id, 4, "/4.pt", attempt=attempt)
    notebook.add_checkpoint(run_id, 8, "/8.pt", attempt=attempt)
    notebook.finish_attempt(attempt, "failed", reason="killed")
    notebook.resume(run_id, 4)
    run = notebook.get_run(run_id)
    assert (run.status, run.status_reason, run.exit_code) == ("queued", None, None)
    assert notebook.metric_history(run_id, "loss")[0].tolist() == [1, 2, 3, 4]
    assert notebook.latest_metrics(run_id)["loss"] == (4, 4.0)
    assert notebook.image_steps(run_id, "r") == [4] and [c.step for c in notebook.checkpoints(run_id)] == [4]
    again = claimed(notebook, run_id)
    notebook.log_metrics(run_id, 5, {"loss": 5.5}, attempt=again)
    notebook.finish_attempt(again, "stopped")
    notebook.resume(run_id, 0)  # no checkpoint to go back to: all of it trains again
    assert notebook.metric_keys(run_id) == [] and notebook.image_keys(run_id) == []


def test_a_checkpoint_is_recorded_with_every_point_before_it(notebook_url):
    """Resume trains again from the step after a checkpoint: the points up to it must be stored with it, even
    when the attempt loses the run before its next flush (seen as a gap of 6 steps under load)."""
    with Notebook(notebook_url, flush_interval=3600) as notebook:  # no background flush to hide the gap
        _checkpoint_then_lose_the_run(notebook)


def _checkpoint_then_lose_the_run(notebook: Notebook) -> None:
    run_id, attempt = running(notebook)
    for step in range(1, 6):
        notebook.log_metrics(run_id, step, {"loss": float(step)}, attempt=attempt)  # still buffered
    notebook.add_checkpoint(run_id, 5, "/5.pt", attempt=attempt)
    notebook.log_metrics(run_id, 6, {"loss": 6.0}, attempt=attempt)
    notebook.fail_stale_attempts(-60)
    with pytest.raises(LeaseLost):
        notebook.flush()
    notebook.resume(run_id, 5)
    assert notebook.metric_history(run_id, "loss")[0].tolist() == [1, 2, 3, 4, 5]


def test_snapshots_are_fenced_discarded_on_resume_but_provenance_and_deleted_with_the_run(notebook):
    run_id, attempt = running(notebook)
    notebook.log_snapshot(run_id, "provenance", 0, {"git": {"commit": "abc"}}, key="1", attempt=attempt)
    for step in (4, 8):
        notebook.log_snapshot(run_id, "features", step, {"step": step, "points": [[0.1, -0.2]], "labels": [0]},
                              attempt=attempt)
    notebook.log_snapshot(run_id, "few_shot", 8, {"step": 8, "accuracy": {"prototype": {"mean": 0.5}}},
                          attempt=attempt)
    assert notebook.snapshot_steps(run_id, "features") == [4, 8]
    assert notebook.snapshot(run_id, "features", 4)["points"] == [[0.1, -0.2]]
    assert notebook.latest_snapshots([run_id], "few_shot")[run_id]["accuracy"]["prototype"]["mean"] == 0.5
    notebook.add_checkpoint(run_id, 4, "/4.pt", attempt=attempt)
    notebook.finish_attempt(attempt, "failed", reason="killed")
    with pytest.raises(LeaseLost):  # an attempt that no longer owns the run writes nothing
        notebook.log_snapshot(run_id, "features", 9, {"step": 9}, attempt=attempt)
    notebook.resume(run_id, 0)  # back to the start: every later snapshot goes, what each attempt ran with stays
    assert notebook.snapshot_steps(run_id, "features") == [] and notebook.latest_snapshots([run_id], "few_shot") == {}
    assert notebook.snapshots(run_id, "provenance") == [Snapshot(0, "1", {"git": {"commit": "abc"}})]
    other = notebook.create_run({}, name="other")
    notebook.log_snapshot(other, "few_shot", 2, {"step": 2})
    notebook.delete_run(run_id)
    assert notebook.snapshots(run_id, "provenance") == []
    assert notebook.latest_snapshots([run_id, other], "few_shot") == {other: {"step": 2}}


def test_hand_over_moves_the_run_to_a_new_attempt_from_its_checkpoint_and_fences_the_old_one(notebook):
    """A Slurm job at its time limit hands its run to the attempt its requeued job will run."""
    run_id, attempt = running(notebook)
    for step in range(1, 8):
        notebook.log_metrics(run_id, step, {"loss": float(step)}, attempt=attempt)
    notebook.add_checkpoint(run_id, 5, "/5.pt", attempt=attempt)
    notebook.flush()
    handed = notebook.hand_over(attempt, 5)
    assert handed.number == attempt.number + 1 and notebook.get_run(run_id).status == "running"
    assert notebook.metric_history(run_id, "loss")[0].tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(LeaseLost):
        notebook.hand_over(attempt, 5)
    assert not notebook.heartbeat(attempt) and notebook.heartbeat(handed)
    assert notebook.current_attempt(run_id, "test-worker") == handed
    assert notebook.current_attempt(run_id, "another worker") is None
