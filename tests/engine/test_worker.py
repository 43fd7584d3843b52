"""The worker, end to end: real worker and run processes on a temporary notebook. Every wait polls the
notebook with a deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import jobs
from engine.presets import PRESETS
from engine.jobs import ensure_worker
from engine.launchers.local import RunProcess
from engine.worker import Worker, device_slots, exit_reason
from lab_notes import Notebook
from tests.helpers import counted_image_folder, tiny, wait_for

ROOT = Path(__file__).resolve().parents[2]


def submit(notebook: Notebook, *overrides: str, preset: str = "tiny", name: str = "run") -> int:
    cfg = tiny(PRESETS[preset], *overrides)
    return notebook.create_run(cfg.model_dump(mode="json"), name=name, preset=preset)


def status(notebook: Notebook, run_id: int) -> str:
    return notebook.get_run(run_id).status


def finished(notebook: Notebook, run_id: int, expected: str = "completed") -> bool:
    """The run reached `expected` and its worker has reaped the process (exit code and output recorded)."""
    run = notebook.get_run(run_id)
    return run.status == expected and run.exit_code is not None


def test_device_slots_one_per_gpu_or_max_parallel_on_cpu():
    assert device_slots(["0", "1", "3"], max_parallel=8) == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "3"}]
    cpu = device_slots([], max_parallel=2)
    assert len(cpu) == 2 and all(s["CUDA_VISIBLE_DEVICES"] == "" and s["OMP_WAIT_POLICY"] == "PASSIVE" for s in cpu)
    assert exit_reason(-9) == "process died, signal 9 (SIGKILL)"


def test_runs_fork_from_the_warm_launcher_each_with_its_slots_share_of_the_threads(notebook, start_worker):
    runs = [submit(notebook, "schedule.episodes=100000", name=f"warm {i}") for i in range(2)]
    worker = start_worker("--max-parallel", "2")
    # running comes a moment before the pid is recorded: wait for both pids
    pids = wait_for(lambda: all(status(notebook, r) == "running" and notebook.get_run(r).pid for r in runs)
                    and [notebook.get_run(r).pid for r in runs], 90, "both runs to start")
    for pid in pids:  # forked from the launcher (a child of the worker), not a fresh interpreter of the worker's
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert parent != worker.pid and b"multiprocessing.forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()
        assert int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1]) == worker.pid
    for run_id in runs:
        (provenance,) = wait_for(lambda: notebook.snapshots(run_id, "provenance"), 30, "the run's provenance")
        assert provenance.payload["hardware"]["torch_threads"] == max(1, (os.cpu_count() or 1) // 2)
        assert provenance.payload["command"][1:3] == ["run-child", str(run_id)]  # what reruns it by hand
        jobs.request_stop(notebook, run_id)
    wait_for(lambda: all(finished(notebook, r, "stopped") for r in runs), 60, "both runs to stop")


def test_three_runs_two_at_a_time_all_complete(notebook, start_worker):
    runs = [submit(notebook, "schedule.episodes=40", "schedule.image_every=20", name=f"r{i}") for i in range(3)]
    start_worker("--max-parallel", "2")
    most_running = 0

    def all_done() -> bool:
        nonlocal most_running
        statuses = [status(notebook, r) for r in runs]
        most_running = max(most_running, statuses.count("running"))
        return all(finished(notebook, r) for r in runs)

    wait_for(all_done, 180, "three runs to complete")
    assert most_running == 2
    for run_id in runs:
        run = notebook.get_run(run_id)
        steps, _ = notebook.metric_history(run_id, "loss/total")
        assert steps.tolist() == list(range(1, 41)) and run.exit_code == 0 and run.device.startswith("cpu")
        assert notebook.image_steps(run_id, "reconstruction") == [20, 40]
        assert "completed at step 40" in run.log_tail
    spans = sorted((notebook.get_run(r).started_at, notebook.get_run(r).ended_at) for r in runs)
    assert not (spans[0][1] > spans[2][0] and spans[1][1] > spans[2][0])  # never three at once


def test_stop_then_resume_continues_from_the_checkpoint(notebook, start_worker, tmp_path):
    episodes = 400
    run_id = submit(notebook, f"schedule.episodes={episodes}", f"schedule.checkpoint_every={episodes}",
                    f"schedule.eval_every={episodes}", f"schedule.image_every={episodes}")
    start_worker()
    wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) >= 20, 120, "the run to train")
    notebook.request_stop(run_id)
    wait_for(lambda: finished(notebook, run_id, "stopped"), 10, "the run to stop")  # the deadline is the assertion
    (checkpoint,) = notebook.checkpoints(run_id)
    stopped_at = checkpoint.step
    # recorded relative to the worker's artifact root (--runs-dir), so any host that mounts it finds the file
    assert (tmp_path / "runs" / checkpoint.path).exists() and stopped_at < episodes
    assert notebook.metric_history(run_id, "loss/total")[0][-1] == stopped_at
    assert jobs.resume(notebook, run_id, tmp_path / "runs") == stopped_at
    wait_for(lambda: finished(notebook, run_id), 120, "the resumed run to complete")
    steps, _ = notebook.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, episodes + 1))  # unbroken, no step twice
    assert f"resuming from step {stopped_at}" in notebook.get_run(run_id).log_tail


def test_killing_a_run_process_fails_it_and_the_worker_goes_on(notebook, start_worker):
    doomed = submit(notebook, "schedule.episodes=100000", name="doomed")
    after = submit(notebook, "schedule.episodes=10", name="after")
    start_worker()
    wait_for(lambda: len(notebook.metric_history(doomed, "loss/total")[0]) >= 10, 120, "the first run to train")
    pid = wait_for(lambda: notebook.get_run(doomed).pid, 10, "the run's pid")
    # at least 10 points have landed (waited for above), so "metrics flushed before are kept" has something to keep
    flushed = len(notebook.metric_history(doomed, "loss/total")[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status(notebook, doomed) == "failed", 10, "the killed run to be marked failed")
    run = notebook.get_run(doomed)
    assert run.status_reason.startswith("process died, signal 9") and run.exit_code == -9
    assert len(notebook.metric_history(doomed, "loss/total")[0]) >= flushed > 0
    wait_for(lambda: status(notebook, after) == "completed", 120, "the next run to complete")


def test_killing_the_worker_fails_its_runs_and_the_next_worker_takes_the_queue(notebook, start_worker):
    running = submit(notebook, "schedule.episodes=100000", name="running")
    queued = submit(notebook, "schedule.episodes=10", name="queued")
    first = start_worker("--stale-after", "4")
    wait_for(lambda: status(notebook, running) == "running" and notebook.get_run(running).pid, 60, "the first run")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    start_worker("--stale-after", "4")
    wait_for(lambda: status(notebook, running) == "failed", 30, "the orphaned run to be marked failed")
    assert f"its worker (pid {first.pid}) died" in notebook.get_run(running).status_reason
    wait_for(lambda: status(notebook, queued) in ("completed", "failed"), 120, "the queued run to end")
    assert status(notebook, queued) == "completed", notebook.get_run(queued).status_reason
    orphan = notebook.get_run(running).pid
    wait_for(lambda: not Path(f"/proc/{orphan}").exists() or "zombie" in Path(f"/proc/{orphan}/status")
             .read_text().lower(), 10, "the orphaned run process to exit")


def test_two_workers_run_each_queued_run_exactly_once(notebook, start_worker):
    runs = [submit(notebook, "schedule.episodes=8", name=f"r{i}") for i in range(4)]
    start_worker()
    start_worker()
    # Two rounds of two cold starts: under CI's load (three test files at a time) a run process's torch import alone
    # has taken 30 s, and one round of this test took over 180 s. On timeout, the message names each run's state.
    try:
        wait_for(lambda: all(finished(notebook, r) for r in runs), 420, "all runs to complete")
    except AssertionError as error:
        states = [(r, (run := notebook.get_run(r)).status, run.exit_code, run.status_reason) for r in runs]
        raise AssertionError(f"{error}: (run, status, exit code, reason) = {states}") from None
    for run_id in runs:
        assert notebook.metric_history(run_id, "loss/total")[0].tolist() == list(range(1, 9))
        assert notebook.get_run(run_id).log_tail.count("completed at step 8") == 1


def test_claimed_runs_are_kept_alive_while_a_start_blocks_past_the_stale_period(notebook, tmp_path):
    """A start can hold up the worker's loop: the warm server answers once it has imported torch, which took 30 s
    and more on a loaded machine, and another worker's sweep reaped the claimed run before its process existed.
    The run started just before it, whose lease the worker keeps while it starts up, must not go stale either."""
    runs = [submit(notebook, name="started"), submit(notebook, name="slow to start")]
    worker = Worker(notebook.url, runs_dir=tmp_path / "runs", launcher="cold", stale_after=3.0, max_parallel=2,
                    gpu_ids=[])
    worker._register()
    blocking, release = threading.Event(), threading.Event()

    class LauncherThatBlocksTheSecondStart:
        def start(self, attempt, **_):
            if worker.children:  # the second start
                blocking.set()
                assert release.wait(60)
            return RunProcess(os.getpid(), lambda: None, lambda: None)

    worker.launcher = LauncherThatBlocksTheSecondStart()
    filling = threading.Thread(target=worker._fill_slots, daemon=True)
    filling.start()
    try:
        wait_for(blocking.is_set, 30, "the second run's start to begin")
        swept_until = time.monotonic() + 2 * worker.stale_after

        def swept_for_two_stale_periods_and_nothing_reaped() -> bool:  # as another worker's sweep would
            assert notebook.fail_stale_attempts(worker.stale_after) == [], [
                (r, notebook.get_run(r).status_reason) for r in runs]
            return time.monotonic() >= swept_until

        wait_for(swept_for_two_stale_periods_and_nothing_reaped, 2 * worker.stale_after + 30, "two stale periods")
    finally:
        release.set()
        filling.join(30)
    assert [status(notebook, r) for r in runs] == ["running"] * 2
    assert sorted(c.attempt.run_id for c in worker.children.values()) == runs
    worker.notebook.close()


def test_a_hand_edited_config_fails_clearly_and_the_worker_goes_on(notebook, start_worker):
    broken = notebook.create_run({"optim": {"lr": -1}, "surprise": 1}, name="edited by hand")
    fine = submit(notebook, "schedule.episodes=5")
    start_worker()
    wait_for(lambda: status(notebook, fine) == "completed", 120, "the valid run to complete")
    run = notebook.get_run(broken)
    assert run.status == "failed" and "stored config no longer validates" in run.status_reason
    assert "optim.lr" in run.status_reason and "surprise: unknown key" in run.status_reason


def test_the_diverging_preset_ends_diverged_with_one_dated_journal_draft(notebook, start_worker):
    run_id = notebook.create_run(PRESETS["2022-12-14-negatives-infonce-diverges"].model_dump(mode="json"),
                             name="negatives", preset="2022-12-14-negatives-infonce-diverges")
    start_worker()
    wait_for(lambda: status(notebook, run_id) == "diverged", 120, "the run to diverge")
    (note,) = wait_for(lambda: notebook.list_notes(run_id=run_id), 120, "the worker's drafter to write its draft")
    report = notebook.get_run(run_id).divergence_report
    assert note.entry_date.isoformat() == time.strftime("%Y-%m-%d")
    assert note.title == f"InfoNCE, negatives-only denominator — run {run_id}" and note.tags == ["draft"]
    assert re.search(rf"Diverged at step {report['incidents'][-1]['step']}: \*\*loss/total is (nan|inf|-inf)",
                     note.body)
    assert "largest_logit" in note.body and "`stop`" in note.body
    assert len(notebook.list_notes(run_id=run_id)) == 1  # one entry per run: no separate divergence note


def test_ensure_worker_starts_one_only_when_none_is_alive(notebook, tmp_path):
    pid = ensure_worker(notebook.url, runs_dir=tmp_path / "runs")
    try:
        assert pid is not None
        wait_for(lambda: notebook.live_workers(15), 60, "the worker's lease")
        assert ensure_worker(notebook.url, runs_dir=tmp_path / "runs") is None
        run_id = submit(notebook, "schedule.episodes=5")
        wait_for(lambda: status(notebook, run_id) == "completed", 120, "the run to complete")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not notebook.live_workers(15), 60, "the worker to retire its lease")


def test_sigterm_stops_the_workers_runs_with_a_checkpoint_and_exits_cleanly(notebook, start_worker, tmp_path):
    run_id = submit(notebook, "schedule.episodes=100000", "schedule.checkpoint_every=100000")
    worker = start_worker()
    wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) >= 5, 120, "the run to train")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    run = notebook.get_run(run_id)
    assert run.status == "stopped" and run.exit_code == 0
    (checkpoint,) = notebook.checkpoints(run_id)
    assert (tmp_path / "runs" / checkpoint.path).exists() and not notebook.live_workers(60)


# --- one owner for a run's life (issue 8): each failure seen before, now a test -----------------------------------


def test_deleting_a_running_run_is_refused_and_the_worker_goes_on(notebook, start_worker, tmp_path):
    long = submit(notebook, "schedule.episodes=100000", name="long")
    worker = start_worker()
    wait_for(lambda: len(notebook.metric_history(long, "loss/total")[0]) >= 5, 120, "the run to train")
    with pytest.raises(jobs.Refused, match=f"run {long} is running: cannot delete it; stop it first"):
        jobs.delete(notebook, long, tmp_path / "runs")
    before = notebook.metric_history(long, "loss/total")[0][-1]
    wait_for(lambda: notebook.metric_history(long, "loss/total")[0][-1] > before + 5, 60, "the run to keep training")
    jobs.request_stop(notebook, long)
    wait_for(lambda: finished(notebook, long, "stopped"), 30, "the run to stop")
    run_dir = tmp_path / "runs" / str(long)
    assert (run_dir / "output.log").exists() and any((run_dir / "checkpoints").iterdir())
    jobs.delete(notebook, long, tmp_path / "runs")
    assert not run_dir.exists() and notebook.get_run(long).status == "deleted"
    after = submit(notebook, "schedule.episodes=5", name="after")
    assert after > long
    wait_for(lambda: finished(notebook, after), 120, "the next run to complete")
    assert worker.poll() is None  # the worker never noticed
    assert notebook.checkpoints(after) and not (tmp_path / "runs" / str(long)).exists()


def test_a_reaped_attempt_stops_by_itself_and_the_resumed_run_stores_each_step_once(notebook, start_worker, tmp_path):
    episodes = 600
    run_id = submit(notebook, f"schedule.episodes={episodes}", "schedule.checkpoint_every=50",
                    "schedule.eval_every=1000", "schedule.image_every=1000")
    start_worker()
    wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) >= 60, 120, "the run to train")
    old_pid = notebook.get_run(run_id).pid
    assert notebook.fail_stale_attempts(-60) == [run_id]  # as if its heartbeat had gone stale
    wait_for(lambda: not Path(f"/proc/{old_pid}").exists() or "zombie" in Path(f"/proc/{old_pid}/status")
             .read_text().lower(), 10, "the reaped attempt's process to stop by itself")
    wait_for(lambda: notebook.get_run(run_id).exit_code == 71, 10, "the worker to record why it stopped")
    step = jobs.resume(notebook, run_id, tmp_path / "runs")
    assert step > 0 and step % 50 == 0
    wait_for(lambda: finished(notebook, run_id), 180, "the resumed run to complete")
    steps, _ = notebook.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, episodes + 1))  # each step exactly once, across both attempts
    run = notebook.get_run(run_id)
    assert run.attempt == 2 and f"resuming from step {step}" in run.log_tail
    assert "no longer owns the run" in run.log_tail
    wait_for(lambda: notebook.live_workers(15), 10, "the worker to take a lease again after the sweep took it")


def test_a_run_that_raises_fails_with_its_reason_and_the_worker_goes_on(notebook, start_worker, tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "datasets"))  # the worker inherits it
    # Files that count as images when the split is checked at submit time, but none decodes: it raises in the run
    counted_image_folder(tmp_path / "datasets" / "undecodable")
    broken = submit(notebook, "data.dataset=folder", "data.path=undecodable", name="broken")
    fine = submit(notebook, "schedule.episodes=5", name="fine")
    worker = start_worker()
    wait_for(lambda: finished(notebook, fine), 120, "the next run to complete")
    run = notebook.get_run(broken)
    assert run.status == "failed" and "undecodable" in run.status_reason and run.exit_code == 1
    assert worker.poll() is None


def test_launch_starts_a_worker_when_the_previous_one_died(notebook, tmp_path):
    runs_dir = tmp_path / "runs"
    first = ensure_worker(notebook.url, runs_dir=runs_dir)
    wait_for(lambda: notebook.live_workers(15), 60, "the first worker's lease")
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not Path(f"/proc/{first}").exists() or "zombie" in Path(f"/proc/{first}/status")
             .read_text().lower(), 10, "the first worker to die")
    assert notebook.live_workers(15)  # its lease has not expired yet: the pid says it is gone
    submitted = jobs.submit(notebook, tiny(PRESETS["tiny"], "schedule.episodes=5"), name="launched", preset="tiny",
                            start_worker=True, runs_dir=runs_dir)
    try:
        assert submitted.worker_pid not in (None, first)
        wait_for(lambda: finished(notebook, submitted.run_id), 120, "the launched run to complete")
        assert jobs.submit(notebook, tiny(PRESETS["tiny"], "schedule.episodes=5"), name="again", preset="tiny",
                           start_worker=True, runs_dir=runs_dir).worker_pid is None  # one is alive now
    finally:
        os.kill(submitted.worker_pid, signal.SIGTERM)
        wait_for(lambda: not any(w.pid == submitted.worker_pid for w in notebook.live_workers(15)), 60,
                 "the second worker to retire")


def test_the_worker_keeps_the_database_password_off_every_command_line(tmp_path):
    notebook = Notebook(f"sqlite:///{tmp_path / 'notebook-hunter2.db'}")  # the name stands in for a password in the URL
    pid = ensure_worker(notebook.url, runs_dir=tmp_path / "runs")
    try:
        run_id = submit(notebook, "schedule.episodes=100000")
        wait_for(lambda: notebook.get_run(run_id).pid, 60, "the run's process")
        for process in (pid, notebook.get_run(run_id).pid):
            assert b"hunter2" not in Path(f"/proc/{process}/cmdline").read_bytes()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: status(notebook, run_id) == "stopped", 60, "the worker to stop its run")
        notebook.close()


def test_the_worker_and_its_run_wait_out_a_30_s_database_outage(tmp_path, cuttable_postgres):
    """The worker and its run reach the notebook through a proxy the test cuts for 30 s: their connections reset,
    new ones refused. (Stopping the PostgreSQL server instead took it from the tests running beside this one.)"""
    through, direct, proxy = cuttable_postgres
    notebook = Notebook(direct)
    worker = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--runs-dir", str(tmp_path / "runs")],
                              cwd=ROOT, stdout=open(tmp_path / "worker.log", "wb"), stderr=subprocess.STDOUT,
                              env={**os.environ, "LAB_NOTEBOOK_URL": through})
    try:
        run_id = submit(notebook, "schedule.episodes=100000", "schedule.image_every=100000",
                        "schedule.eval_every=100000", "schedule.checkpoint_every=100000")
        wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) >= 10, 120, "the run to train")
        pid = notebook.get_run(run_id).pid
        proxy.cut()
        try:
            outage_ends = time.monotonic() + 30
            while time.monotonic() < outage_ends:  # the outage itself: both processes must stay up through it
                assert worker.poll() is None, "the worker exited during the outage"
                assert Path(f"/proc/{pid}").exists(), "the run's process exited during the outage"
                time.sleep(0.5)
        finally:
            proxy.restore()
        assert proxy.refused > 0, "nothing tried to reach the notebook during the outage"
        seen = len(notebook.metric_history(run_id, "loss/total")[0])
        wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) > seen + 20, 60,
                 "the run's points to flow again")
        assert status(notebook, run_id) == "running" and worker.poll() is None
        jobs.request_stop(notebook, run_id)
        wait_for(lambda: finished(notebook, run_id, "stopped"), 60, "the run to stop with a checkpoint")
        steps = notebook.metric_history(run_id, "loss/total")[0].tolist()
        assert steps == list(range(1, len(steps) + 1))  # nothing lost, nothing twice
        after = submit(notebook, "schedule.episodes=5", name="after")
        wait_for(lambda: finished(notebook, after), 120, "a run queued after the outage to complete")
        assert "notebook unreachable" in (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        notebook.close()


def test_a_run_log_on_disk_is_rotated_and_read_incrementally(tmp_path):
    from engine.worker import rotate_log

    log = tmp_path / "output.log"
    writer = open(log, "ab", buffering=0)  # as the run's stdout: opened for appending by the worker
    writer.write(b"x" * 3000)
    assert rotate_log(log, 3000, cap=4000) == 3000  # under the cap: read on from where we were
    writer.write(b"y" * 2000)
    assert rotate_log(log, 5000, cap=4000) == 0  # over it: kept as output.log.1, the live file starts again
    assert (tmp_path / "output.log.1").stat().st_size == 5000 and log.stat().st_size == 0
    writer.write(b"after\n")
    assert log.read_bytes() == b"after\n"  # the writer's next line lands at the new start, not past a hole
    writer.close()


def test_the_worker_records_provenance_per_attempt_and_backs_up_when_due(notebook, start_worker, tmp_path,
                                                                          monkeypatch):
    from lab_notes.backup import backups_in

    monkeypatch.setenv("LAB_BACKUP_DIR", str(tmp_path / "backups"))  # the worker inherits it
    run_id = submit(notebook, "schedule.episodes=5", "schedule.final_eval_episodes=0", name="traced")
    start_worker("--launcher", "cold")  # a fresh interpreter per run: what bench/first_point.py compares with
    wait_for(lambda: finished(notebook, run_id), 120, "the run to complete")
    (recorded,) = notebook.snapshots(run_id, "provenance")
    provenance = recorded.payload
    assert (recorded.step, recorded.key) == (0, "1") and provenance["attempt"] == 1
    assert provenance["command"][1:3] == ["run-child", str(run_id)]
    assert provenance["git"].get("commit") or provenance["git"].get("error")
    (made,) = wait_for(lambda: backups_in(tmp_path / "backups"), 60, "the worker's first automatic backup")
    with Notebook(f"sqlite:///{made}") as copy:
        assert copy.get_run(run_id).name == "traced"
