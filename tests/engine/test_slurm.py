"""The Slurm executor against a real Slurm (tests/slurm.sh starts a single-node one and sets LAB_TEST_SLURM=1):
a worker submits runs with runtime.executor=slurm as submitit jobs and treats each job as its slot's child.
Every wait polls with a deadline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.presets import PRESETS
from engine.launchers.slurm import (SLURM_TIMER_SECONDS, JobState, flags_as_parameters, parse_job_state,
                              sbatch_parameters, stop_grace_seconds, warning_before_limit_seconds)
from lab_notes import Notebook
from tests.helpers import stop_processes, tiny, wait_for

ROOT = Path(__file__).resolve().parents[2]

needs_slurm = pytest.mark.skipif(
    not os.environ.get("LAB_TEST_SLURM") and os.environ.get("CI") != "true",
    reason="no Slurm: source tests/slurm.sh (as root with apt) to start a single-node one")


STOP_GRACE_SECONDS = 5  # the impatient worker's: how long a job may take to end after a stop before it is cancelled


@pytest.fixture
def worker(notebook, tmp_path):
    yield from worker_on(notebook, tmp_path)


@pytest.fixture
def impatient_worker(notebook, tmp_path):
    yield from worker_on(notebook, tmp_path, LAB_SLURM_STOP_GRACE_SECONDS=str(STOP_GRACE_SECONDS))


def worker_on(notebook: Notebook, tmp_path: Path, **env: str):
    """A worker process on `notebook` (with `env` added; its output in worker.log, a file that never fills up as a pipe
    nobody reads would), and every job it submitted cancelled after the test."""
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", notebook.url, "--runs-dir",
                                    str(tmp_path / "runs")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env})
    yield process
    stop_processes([process], timeout=90)
    for job in jobs_of(notebook):
        subprocess.run(["scancel", job], capture_output=True)


def submit(notebook: Notebook, *overrides: str) -> int:
    cfg = tiny(PRESETS["tiny"], "runtime.executor=slurm", "runtime.system_metrics_seconds=0", *overrides)
    return notebook.create_run(cfg.model_dump(mode="json"), name="on slurm", preset="tiny")


def jobs_of(notebook: Notebook) -> list[str]:
    return [snapshot.payload["job_id"] for run in notebook.list_runs() for snapshot in notebook.snapshots(run.id, "slurm")]


def job_of(notebook: Notebook, run_id: int) -> str | None:
    found = notebook.snapshots(run_id, "slurm")
    return found[-1].payload["job_id"] if found else None


def job_fields(job: str) -> dict[str, str]:
    """`scontrol show job`'s fields (JobState, Reason, Restarts, …); empty once Slurm no longer knows the job."""
    line = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def squeue_state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def ended(notebook: Notebook, run_id: int, expected: str) -> bool:
    run = notebook.get_run(run_id)
    return run.status == expected and run.exit_code is not None


# --- without Slurm ------------------------------------------------------------------------------------------


def test_sbatch_parameters_come_from_the_run_config():
    cfg = tiny(PRESETS["tiny"], "runtime.executor=slurm", "runtime.processes=2", "runtime.slurm.partition=gpu",
               "runtime.slurm.time_limit_minutes=1", "runtime.slurm.gpus_per_task=1")
    parameters = sbatch_parameters(cfg)
    assert parameters["tasks_per_node"] == 2 and parameters["nodes"] == 1 and parameters["timeout_min"] == 1
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_gpus_per_task"] == 1
    assert parameters["slurm_signal_delay_s"] == 10  # Slurm warns up to 30 s early: at 20-50 s of a 1-minute job
    assert flags_as_parameters(["--qos=high", "--exclusive"]) == {"qos": "high", "exclusive": True}


def test_the_time_limit_warning_comes_after_the_job_has_trained_and_before_its_limit():
    """slurmctld checks its timers every 30 s and warns at the first check after which the next would be too late,
    so a job asking for N s is warned between N and N + 30 s before its limit (measured on this Slurm: 1-minute
    jobs asking for 30 s were warned 4 s in, before Python could catch it)."""
    for minutes in (1, 2, 3, 5, 60, 24 * 60):
        asked = warning_before_limit_seconds(minutes)
        earliest_after_start = minutes * 60 - asked - SLURM_TIMER_SECONDS
        least = 20 if minutes == 1 else minutes * 30  # from 2 minutes on: in the job's second half
        assert earliest_after_start >= least, f"{minutes} min: warned as early as {earliest_after_start} s in"
        assert asked >= 10, "time to hand the run over and requeue the job"
    assert warning_before_limit_seconds(60) == 120


def test_the_stop_grace_time_is_read_from_the_environment():
    assert stop_grace_seconds({}) == 60.0
    assert stop_grace_seconds({"LAB_SLURM_STOP_GRACE_SECONDS": "5"}) == 5.0
    with pytest.raises(ValueError, match="LAB_SLURM_STOP_GRACE_SECONDS"):
        stop_grace_seconds({"LAB_SLURM_STOP_GRACE_SECONDS": "soon"})


def test_scontrol_lines_read_as_job_states():
    line = "JobId=7 JobName=lab-run-1 JobState=CANCELLED Reason=None Dependency=(null) ExitCode=0:15"
    assert parse_job_state(line) == JobState("CANCELLED", "None", "0:15")
    assert not parse_job_state(line).alive and parse_job_state(line.replace("CANCELLED", "PENDING")).alive
    assert parse_job_state("slurm_load_jobs error: Invalid job id specified") is None


def test_a_controller_that_does_not_answer_leaves_the_job_as_it_was_until_it_has_been_silent_too_long(monkeypatch):
    """`scontrol` fails now and then on a busy controller; only Slurm saying it no longer knows the job ends it."""
    from engine.launchers import slurm as slurm_launcher

    answers = iter([JobState("RUNNING", "None", "0:0"), OSError("Socket timed out on send/recv operation"), None])

    def scontrol(job_id):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(slurm_launcher, "job_state", scontrol)
    monkeypatch.setattr(slurm_launcher, "POLL_SECONDS", 0.0)
    job = slurm_launcher.SlurmJob("12")
    assert job.poll() is None and job.poll() is None, "running, then not answered: as it was"
    assert job.poll() == 1 and job.ended_because() == "Slurm job 12 is no longer known to Slurm"
    monkeypatch.setattr(slurm_launcher, "job_state", lambda job_id: (_ for _ in ()).throw(OSError("connect failure")))
    monkeypatch.setattr(slurm_launcher, "UNANSWERED_AT_MOST_SECONDS", 0.0)
    silent = slurm_launcher.SlurmJob("13")
    assert silent.poll() == 1 and "could not be asked about job 13" in silent.ended_because()


# An attempt's own process, heartbeating its lease, whose run is then given to a new attempt: by the process itself
# at its time limit (SlurmAttempt.checkpoint, as submitit calls it), or by someone else. It prints once its
# heartbeat has stopped, and lives on to exit 0 unless the lost lease ended it.
LOSES_ITS_LEASE = """
import sys
from pathlib import Path
from engine.launchers.slurm import SlurmAttempt
from engine.run_process import _lease_lost
from lab_notes import Notebook, NotebookSink

notebook = Notebook(sys.argv[1])
attempt = notebook.claim_next_run("job")
sink = NotebookSink(notebook, attempt, on_lease_lost=lambda: _lease_lost(attempt))
if sys.argv[2] == "itself":
    SlurmAttempt().checkpoint(attempt, Path(sys.argv[3]), Path(sys.argv[3]) / "log")
else:
    Notebook(sys.argv[1]).hand_over(attempt, 0)
sink._heartbeat.join(timeout=60)
print("heartbeat stopped", flush=True)
"""


@pytest.mark.parametrize("given_by, exit_code", [("itself", 0), ("another", 71)])
def test_a_job_that_hands_its_run_over_lives_until_it_is_requeued(notebook, tmp_path, given_by, exit_code):
    """Seen in CI: a job's heartbeat saw the lease it had just handed over lost before `scontrol requeue` had
    answered, and exited 71; Slurm ended the job FAILED instead of requeuing it, failing the run. A run taken by
    someone else still ends its old process at once."""
    run_id = notebook.create_run(tiny(PRESETS["tiny"]).model_dump(mode="json"), name="at its limit")
    ended = subprocess.run([sys.executable, "-c", LOSES_ITS_LEASE, notebook.url, given_by, str(tmp_path)], cwd=ROOT,
                           env={**os.environ, "LAB_NOTEBOOK_URL": notebook.url}, capture_output=True, text=True,
                           timeout=120)
    assert ended.returncode == exit_code, ended.stdout + ended.stderr
    assert ("heartbeat stopped" in ended.stdout) == (given_by == "itself"), ended.stdout
    assert notebook.get_run(run_id).attempt == 2


# --- a real Slurm -------------------------------------------------------------------------------------------


@needs_slurm
def test_a_two_process_run_on_slurm_is_queued_there_completes_and_logs_its_metrics(notebook, worker):
    run_id = submit(notebook, "runtime.processes=2", "schedule.episodes=30")
    job = wait_for(lambda: job_of(notebook, run_id), 60, "the Slurm job to be submitted")
    seen = wait_for(lambda: squeue_state(job), 30, "the job in squeue")
    assert seen in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
    wait_for(lambda: ended(notebook, run_id, "completed"), 150, "the run to complete on Slurm", every=0.5)
    steps, _ = notebook.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, 31))
    assert "2 task(s)" in notebook.get_run(run_id).log_tail


@needs_slurm
def test_stop_from_the_notebook_ends_the_job_with_a_checkpoint(notebook, worker):
    run_id = submit(notebook, "schedule.episodes=100000", "schedule.checkpoint_every=100000")
    wait_for(lambda: notebook.metric_keys(run_id), 120, "the run to train on Slurm", every=0.5)
    notebook.request_stop(run_id)
    wait_for(lambda: ended(notebook, run_id, "stopped"), 60, "the run to stop", every=0.5)
    assert notebook.checkpoints(run_id), "a stopped run keeps a checkpoint to resume from"
    job = job_of(notebook, run_id)
    wait_for(lambda: squeue_state(job) in ("", "COMPLETED"), 30, "the job to end")


@needs_slurm
def test_scancel_from_outside_fails_the_run_with_slurms_reason(notebook, worker):
    run_id = submit(notebook, "schedule.episodes=100000")
    wait_for(lambda: notebook.metric_keys(run_id), 120, "the run to train on Slurm", every=0.5)
    subprocess.run(["scancel", job_of(notebook, run_id)], check=True)
    wait_for(lambda: ended(notebook, run_id, "failed"), 60, "the run to fail", every=0.5)
    assert "CANCELLED" in notebook.get_run(run_id).status_reason


@needs_slurm
def test_a_job_that_does_not_end_after_a_stop_is_cancelled_after_the_grace_time(notebook, impatient_worker):
    """The stop's grace path: a job that cannot obey a stop (here one held in Slurm's queue until tomorrow, so
    its run never starts to see the request) is cancelled by the worker once the grace time has passed, and the
    run ends failed, saying why, rather than waiting on the queue."""
    run_id = submit(notebook, 'runtime.slurm.extra_flags=["--begin=now+1day"]')
    job = wait_for(lambda: job_of(notebook, run_id), 60, "the Slurm job to be submitted")
    assert job_fields(job)["JobState"] == "PENDING" and notebook.get_run(run_id).status == "running"
    asked = time.monotonic()
    notebook.request_stop(run_id)
    wait_for(lambda: ended(notebook, run_id, "failed"), STOP_GRACE_SECONDS + 30, "the run to end", every=0.2)
    waited = time.monotonic() - asked
    reason = notebook.get_run(run_id).status_reason
    assert "a stop was asked" in reason and "the worker cancelled it" in reason and f"job {job} ended CANCELLED" in reason
    assert job_fields(job)["JobState"] == "CANCELLED"
    assert waited >= STOP_GRACE_SECONDS, "cancelled only once the grace time had passed"
    print(f"stop -> job cancelled and run failed in {waited:.1f} s (grace {STOP_GRACE_SECONDS} s): {reason}")


# Far more than any 1-minute job trains: the run goes on over requeued jobs until the test stops it. (A run of a
# fixed length that one idle job cannot finish, 7,000 steps, took 5 jobs in a loaded suite and more than 8 minutes
# on a slower machine: how many jobs a fixed length takes depends on the machine, one hand-over does not.)
NEVER_ENDS_ON_ITS_OWN = 1_000_000
TRAINED_AFTER_THE_HAND_OVER = 100  # steps the requeued job trains past its checkpoint before the stop


@needs_slurm
def test_a_job_that_reaches_its_time_limit_is_requeued_and_the_run_goes_on_from_its_checkpoint_each_step_once(
        notebook, worker, tmp_path):
    """A real 1-minute limit: nothing here signals the job. Slurm warns it (USR2) 20-50 s in
    (engine.launchers.slurm.warning_before_limit_seconds); submitit calls SlurmAttempt.checkpoint, which hands the run
    to a new attempt from its newest checkpoint and requeues the job; the requeued job resumes there. Slurm holds a
    requeued job back for its credential lifetime (AuthInfo's cred_expire, 120 s by default, which is also how long
    a job step's credential is valid: not a setting to lower for a test), so the test moves the requeued job's start
    to 2 s from now (`scontrol update StartTime=now+2`), as an administrator could. Once the requeued job has
    trained past its checkpoint, a stop ends the run; every step is stored once."""
    started = time.monotonic()
    run_id = submit(notebook, "runtime.slurm.time_limit_minutes=1", f"schedule.episodes={NEVER_ENDS_ON_ITS_OWN}",
                    "schedule.checkpoint_every=200", "schedule.eval_every=100000", "schedule.image_every=100000")
    job = wait_for(lambda: job_of(notebook, run_id), 60, "the Slurm job to be submitted")
    log_file = tmp_path / "runs" / str(run_id) / "output.log"
    requeues_started: dict[str, int] = {}  # Slurm's restart count -> seconds into the test it was moved to now

    def resumed_from() -> list[int]:
        log = log_file.read_text() if log_file.exists() else ""
        return [int(step) for step in re.findall(r"time limit; attempt \d+ resumes from step (\d+)", log)]

    def trained_past_its_checkpoint_starting_the_requeued_job_now() -> bool:
        run = notebook.get_run(run_id)
        assert run.status in ("queued", "running"), f"run {run.status}: {run.status_reason}"
        fields = job_fields(job)
        if fields.get("JobState") == "PENDING" and fields.get("Reason") == "BeginTime":
            # Not in the second the last job ended: slurmd refuses to launch a job again in the second its
            # credential was revoked ("Job N already killed, do not launch batch job"), which is what the hold
            # guards against; PENDING (no longer COMPLETING) says that job has ended.
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+2"], check=True)
            requeues_started.setdefault(fields["Restarts"], round(time.monotonic() - started))
        steps, _ = notebook.metric_history(run_id, "loss/total")
        return (run.attempt >= 2 and bool(resumed_from()) and len(steps) > 0
                and steps[-1] > resumed_from()[0] + TRAINED_AFTER_THE_HAND_OVER)

    # A bound, not an expectation (~100 s): one job's minute, the requeue, torch's import and 100 steps.
    wait_for(trained_past_its_checkpoint_starting_the_requeued_job_now, 300, "the requeued job to train", every=0.5)
    notebook.request_stop(run_id)
    wait_for(lambda: ended(notebook, run_id, "stopped"), 120, "the run to stop", every=0.5)
    run = notebook.get_run(run_id)
    steps, _ = notebook.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, int(steps[-1]) + 1)), "each step once"
    assert {s.payload["job_id"] for s in notebook.snapshots(run_id, "slurm")} == {job}, "one job, requeued"
    wait_for(lambda: squeue_state(job) in ("", "COMPLETED"), 30, "the job to end")
    assert int(job_fields(job)["Restarts"]) == run.attempt - 1, "Slurm requeued the job once per hand-over"
    log, handed_at = log_file.read_text(), resumed_from()
    assert "Caught signal SIGUSR2" in log and "this job is timed-out" in log, "Slurm's own time-limit warning"
    assert log.count(f"Requeued job {job} (") == run.attempt - 1, "submitit requeued the job at each warning"
    assert f"resuming from step {handed_at[0]}" in log, "the requeued job went on from the handed-over step"
    assert len(handed_at) == run.attempt - 1 and handed_at == sorted(handed_at), "each job went further"
    print(f"1-minute jobs: {run.attempt} attempts of one job (Slurm restarts {run.attempt - 1}), handed over at "
          f"steps {handed_at}, requeued jobs started at {list(requeues_started.values())} s; {len(steps)} steps "
          f"stored once; stopped after {time.monotonic() - started:.0f} s")
