"""The worker, end to end: real worker and run processes on a temporary notebook. Every wait polls the
notebook with a deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import PRESETS
from engine.worker import device_slots, ensure_worker, exit_reason
from lab_notes import Notebook
from tests.helpers import tiny, wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def book(tmp_path):
    notebook = Notebook(f"sqlite:///{tmp_path / 'notebook.db'}")
    yield notebook
    notebook.close()


@pytest.fixture
def start_worker(book, tmp_path):
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", book.url, "--runs-dir",
                                    str(tmp_path / "runs"), *extra], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def submit(book: Notebook, *overrides: str, preset: str = "tiny", name: str = "run") -> int:
    cfg = tiny(PRESETS[preset], *overrides)
    return book.create_run(cfg.model_dump(mode="json"), name=name, preset=preset)


def status(book: Notebook, run_id: int) -> str:
    return book.get_run(run_id).status


def finished(book: Notebook, run_id: int, expected: str = "completed") -> bool:
    """The run reached `expected` and its worker has reaped the process (exit code and output recorded)."""
    run = book.get_run(run_id)
    return run.status == expected and run.exit_code is not None


def test_device_slots_one_per_gpu_or_max_parallel_on_cpu():
    assert device_slots(["0", "1", "3"], max_parallel=8) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "3"}]
    cpu = device_slots([], max_parallel=2)
    assert len(cpu) == 2 and all(s["CUDA_VISIBLE_DEVICES"] == "" for s in cpu)
    assert exit_reason(-9) == "process died, signal 9 (SIGKILL)"


def test_three_runs_two_at_a_time_all_complete(book, start_worker):
    runs = [submit(book, "schedule.episodes=40", "schedule.image_every=20", name=f"r{i}") for i in range(3)]
    start_worker("--max-parallel", "2")
    most_running = 0

    def all_done() -> bool:
        nonlocal most_running
        statuses = [status(book, r) for r in runs]
        most_running = max(most_running, statuses.count("running"))
        return all(finished(book, r) for r in runs)

    wait_for(all_done, 180, "three runs to complete")
    assert most_running == 2
    for run_id in runs:
        run = book.get_run(run_id)
        steps, _ = book.metric_history(run_id, "loss/total")
        assert steps.tolist() == list(range(1, 41)) and run.exit_code == 0 and run.device.startswith("cpu")
        assert book.image_steps(run_id, "reconstruction") == [20, 40]
        assert "completed at step 40" in run.log_tail
    spans = sorted((book.get_run(r).started_at, book.get_run(r).ended_at) for r in runs)
    assert not (spans[0][1] > spans[2][0] and spans[1][1] > spans[2][0])  # never three at once


def test_stop_then_resume_continues_from_the_checkpoint(book, start_worker):
    episodes = 400
    run_id = submit(book, f"schedule.episodes={episodes}", f"schedule.checkpoint_every={episodes}",
                    f"schedule.eval_every={episodes}", f"schedule.image_every={episodes}")
    start_worker()
    wait_for(lambda: len(book.metric_history(run_id, "loss/total")[0]) >= 20, 120, "the run to train")
    asked = time.monotonic()
    book.request_stop(run_id)
    wait_for(lambda: finished(book, run_id, "stopped"), 10, "the run to stop")
    assert time.monotonic() - asked < 10
    (checkpoint,) = book.checkpoints(run_id)
    stopped_at = checkpoint.step
    assert Path(checkpoint.path).exists() and stopped_at < episodes
    assert book.metric_history(run_id, "loss/total")[0][-1] == stopped_at
    book.requeue(run_id)
    wait_for(lambda: finished(book, run_id), 120, "the resumed run to complete")
    steps, _ = book.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, episodes + 1))  # unbroken, no step twice
    assert f"resuming from step {stopped_at}" in book.get_run(run_id).log_tail


def test_killing_a_run_process_fails_it_and_the_worker_goes_on(book, start_worker):
    doomed = submit(book, "schedule.episodes=100000", name="doomed")
    after = submit(book, "schedule.episodes=10", name="after")
    start_worker()
    wait_for(lambda: len(book.metric_history(doomed, "loss/total")[0]) >= 10, 120, "the first run to train")
    pid = wait_for(lambda: book.get_run(doomed).pid, 10, "the run's pid")
    time.sleep(0.6)  # let a flush land, so "metrics flushed before are kept" has something to keep
    flushed = len(book.metric_history(doomed, "loss/total")[0])
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(book, doomed) == "failed", 10, "the killed run to be marked failed")
    assert time.monotonic() - killed < 10
    run = book.get_run(doomed)
    assert run.status_reason.startswith("process died, signal 9") and run.exit_code == -9
    assert len(book.metric_history(doomed, "loss/total")[0]) >= flushed > 0
    wait_for(lambda: status(book, after) == "completed", 120, "the next run to complete")


def test_killing_the_worker_fails_its_runs_and_the_next_worker_takes_the_queue(book, start_worker):
    running = submit(book, "schedule.episodes=100000", name="running")
    queued = submit(book, "schedule.episodes=10", name="queued")
    first = start_worker("--stale-after", "4")
    wait_for(lambda: status(book, running) == "running" and book.get_run(running).pid, 60, "the first run")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    start_worker("--stale-after", "4")
    wait_for(lambda: status(book, running) == "failed", 30, "the orphaned run to be marked failed")
    assert "heartbeat stale" in book.get_run(running).status_reason
    wait_for(lambda: status(book, queued) == "completed", 120, "the queued run to complete")
    orphan = book.get_run(running).pid
    wait_for(lambda: not Path(f"/proc/{orphan}").exists() or "zombie" in Path(f"/proc/{orphan}/status")
             .read_text().lower(), 10, "the orphaned run process to exit")


def test_two_workers_run_each_queued_run_exactly_once(book, start_worker):
    runs = [submit(book, "schedule.episodes=8", name=f"r{i}") for i in range(4)]
    start_worker()
    start_worker()
    wait_for(lambda: all(finished(book, r) for r in runs), 180, "all runs to complete")
    for run_id in runs:
        assert book.metric_history(run_id, "loss/total")[0].tolist() == list(range(1, 9))
        assert book.get_run(run_id).log_tail.count("completed at step 8") == 1


def test_a_hand_edited_config_fails_clearly_and_the_worker_goes_on(book, start_worker):
    broken = book.create_run({"optim": {"lr": -1}, "surprise": 1}, name="edited by hand")
    fine = submit(book, "schedule.episodes=5")
    start_worker()
    wait_for(lambda: status(book, fine) == "completed", 120, "the valid run to complete")
    run = book.get_run(broken)
    assert run.status == "failed" and "stored config no longer validates" in run.status_reason
    assert "optim.lr" in run.status_reason and "surprise: unknown key" in run.status_reason


def test_the_diverging_preset_ends_diverged_with_a_dated_journal_note(book, start_worker):
    run_id = book.create_run(PRESETS["2022-12-14-negatives-infonce-diverges"].model_dump(mode="json"),
                             name="negatives", preset="2022-12-14-negatives-infonce-diverges")
    start_worker()
    wait_for(lambda: status(book, run_id) == "diverged", 120, "the run to diverge")
    (note,) = book.list_notes(run_id=run_id)
    report = book.get_run(run_id).divergence_report
    assert note.entry_date.isoformat() == time.strftime("%Y-%m-%d")
    assert f"diverged at step {report['first_step']}" in note.title and re.search(r"loss/total is (nan|inf|-inf)", note.body)
    assert "largest_logit" in note.body and note.tags == ["divergence"]


def test_ensure_worker_starts_one_only_when_none_is_alive(book, tmp_path):
    pid = ensure_worker(book.url, runs_dir=tmp_path / "runs")
    try:
        assert pid is not None
        wait_for(lambda: book.live_workers(15), 60, "the worker's lease")
        assert ensure_worker(book.url, runs_dir=tmp_path / "runs") is None
        run_id = submit(book, "schedule.episodes=5")
        wait_for(lambda: status(book, run_id) == "completed", 120, "the run to complete")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not book.live_workers(15), 60, "the worker to retire its lease")


def test_sigterm_stops_the_workers_runs_with_a_checkpoint_and_exits_cleanly(book, start_worker):
    run_id = submit(book, "schedule.episodes=100000", "schedule.checkpoint_every=100000")
    worker = start_worker()
    wait_for(lambda: len(book.metric_history(run_id, "loss/total")[0]) >= 5, 120, "the run to train")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    run = book.get_run(run_id)
    assert run.status == "stopped" and run.exit_code == 0
    (checkpoint,) = book.checkpoints(run_id)
    assert Path(checkpoint.path).exists() and not book.live_workers(60)
