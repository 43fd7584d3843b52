"""The Slurm executor against a real Slurm (tests/slurm.sh starts a single-node one and sets LAB_TEST_SLURM=1):
a worker submits runs with runtime.executor=slurm as submitit jobs and treats each job as its slot's child.
Every wait polls with a deadline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import PRESETS
from engine.executors import JobState, flags_as_parameters, parse_job_state, sbatch_parameters
from lab_notes import Notebook
from tests.helpers import tiny, wait_for

ROOT = Path(__file__).resolve().parents[2]

needs_slurm = pytest.mark.skipif(
    not os.environ.get("LAB_TEST_SLURM") and os.environ.get("CI") != "true",
    reason="no Slurm: source tests/slurm.sh (as root with apt) to start a single-node one")


@pytest.fixture
def worker(book, tmp_path):
    process = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", book.url, "--runs-dir",
                                str(tmp_path / "runs")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    yield process
    process.terminate()
    try:
        process.wait(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
    for job in jobs_of(book):
        subprocess.run(["scancel", job], capture_output=True)


def submit(book: Notebook, *overrides: str) -> int:
    cfg = tiny(PRESETS["tiny"], "runtime.executor=slurm", "runtime.system_metrics_seconds=0", *overrides)
    return book.create_run(cfg.model_dump(mode="json"), name="on slurm", preset="tiny")


def jobs_of(book: Notebook) -> list[str]:
    return [snapshot.payload["job_id"] for run in book.list_runs() for snapshot in book.snapshots(run.id, "slurm")]


def job_of(book: Notebook, run_id: int) -> str | None:
    found = book.snapshots(run_id, "slurm")
    return found[-1].payload["job_id"] if found else None


def squeue_state(job: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout.strip()


def ended(book: Notebook, run_id: int, expected: str) -> bool:
    run = book.get_run(run_id)
    return run.status == expected and run.exit_code is not None


# --- without Slurm ------------------------------------------------------------------------------------------


def test_sbatch_parameters_come_from_the_run_config():
    cfg = tiny(PRESETS["tiny"], "runtime.executor=slurm", "runtime.processes=2", "runtime.slurm.partition=gpu",
               "runtime.slurm.time_limit_minutes=1", "runtime.slurm.gpus_per_task=1")
    parameters = sbatch_parameters(cfg)
    assert parameters["tasks_per_node"] == 2 and parameters["nodes"] == 1 and parameters["timeout_min"] == 1
    assert parameters["slurm_partition"] == "gpu" and parameters["slurm_gpus_per_task"] == 1
    assert parameters["slurm_signal_delay_s"] == 30  # half of a 1-minute limit: it trains before the warning
    assert flags_as_parameters(["--qos=high", "--exclusive"]) == {"qos": "high", "exclusive": True}


def test_scontrol_lines_read_as_job_states():
    line = "JobId=7 JobName=lab-run-1 JobState=CANCELLED Reason=None Dependency=(null) ExitCode=0:15"
    assert parse_job_state(line) == JobState("CANCELLED", "None", "0:15")
    assert not parse_job_state(line).alive and parse_job_state(line.replace("CANCELLED", "PENDING")).alive
    assert parse_job_state("slurm_load_jobs error: Invalid job id specified") is None


# --- a real Slurm -------------------------------------------------------------------------------------------


@needs_slurm
def test_a_two_process_run_on_slurm_is_queued_there_completes_and_logs_its_metrics(book, worker):
    run_id = submit(book, "runtime.processes=2", "schedule.episodes=30")
    job = wait_for(lambda: job_of(book, run_id), 60, "the Slurm job to be submitted")
    seen = wait_for(lambda: squeue_state(job), 30, "the job in squeue")
    assert seen in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
    wait_for(lambda: ended(book, run_id, "completed"), 150, "the run to complete on Slurm", every=0.5)
    steps, _ = book.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, 31))
    assert "2 task(s)" in book.get_run(run_id).log_tail


@needs_slurm
def test_stop_from_the_notebook_ends_the_job_with_a_checkpoint(book, worker):
    run_id = submit(book, "schedule.episodes=100000", "schedule.checkpoint_every=100000")
    wait_for(lambda: book.metric_keys(run_id), 120, "the run to train on Slurm", every=0.5)
    book.request_stop(run_id)
    wait_for(lambda: ended(book, run_id, "stopped"), 60, "the run to stop", every=0.5)
    assert book.checkpoints(run_id), "a stopped run keeps a checkpoint to resume from"
    job = job_of(book, run_id)
    wait_for(lambda: squeue_state(job) in ("", "COMPLETED"), 30, "the job to end")


@needs_slurm
def test_scancel_from_outside_fails_the_run_with_slurms_reason(book, worker):
    run_id = submit(book, "schedule.episodes=100000")
    wait_for(lambda: book.metric_keys(run_id), 120, "the run to train on Slurm", every=0.5)
    subprocess.run(["scancel", job_of(book, run_id)], check=True)
    wait_for(lambda: ended(book, run_id, "failed"), 60, "the run to fail", every=0.5)
    assert "CANCELLED" in book.get_run(run_id).status_reason


@needs_slurm
def test_a_job_warned_of_its_time_limit_is_requeued_and_the_run_completes_with_each_step_once(book, worker):
    """Slurm warns a job before its time limit with the signal submitit asks for (USR2, `--signal`); here the test
    sends it, because this Slurm delivers a 1-minute limit's warning at the job's start (its signal timer ticks
    about once a minute), before Python can handle it. The requeued job is then started at once instead of
    after the few minutes Slurm holds a requeued job back."""
    started = time.monotonic()
    run_id = submit(book, "schedule.episodes=1500", "schedule.checkpoint_every=100", "schedule.eval_every=100000",
                    "schedule.image_every=100000")
    wait_for(lambda: len(book.checkpoints(run_id)) >= 2, 120, "two checkpoints", every=0.5)
    job = job_of(book, run_id)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    wait_for(lambda: book.get_run(run_id).attempt >= 2, 60, "the run handed to a new attempt", every=0.5)
    wait_for(lambda: squeue_state(job) == "PENDING", 60, "the job requeued", every=0.5)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_for(lambda: ended(book, run_id, "completed"), 150, "the requeued run to complete", every=0.5)
    steps, _ = book.metric_history(run_id, "loss/total")
    assert steps.tolist() == list(range(1, 1501)), "each step once"
    assert {s.payload["job_id"] for s in book.snapshots(run_id, "slurm")} == {job}, "one job, requeued"
    assert "resuming from step" in book.get_run(run_id).log_tail
    print(f"warned, requeued and completed in {time.monotonic() - started:.0f} s")
