"""Where a run executes, beside the worker's own machine: a Slurm job, submitted through submitit.

- `SlurmLauncher.start(attempt, …)`: submits one job for the attempt (nodes = runtime.nodes, tasks per node =
  runtime.processes, the rest from runtime.slurm) and returns a `RunProcess` whose `poll` reads the job's state
  from Slurm, so the worker treats the job as the slot's child: it reaps it, fails it with Slurm's reason, and
  cancels it (`scancel`) when a stop was asked and the job has not ended within a grace time
  ($LAB_SLURM_STOP_GRACE_SECONDS, 60 s by default).
- `SlurmAttempt`: what each task of the job runs. Its tasks are the run's ranks (RANK, WORLD_SIZE, MASTER_ADDR
  from Slurm's environment); rank 0 runs the attempt exactly as a local run's process does
  (`engine.run_process.run_one`), the others train and drop what they would write. At the time limit (or on
  preemption) submitit calls its `checkpoint`: the run is handed to a new attempt that resumes from the newest
  checkpoint, and the job is requeued with it. One run, several attempts, each step stored once.

The notebook's URL (and any password in it) reaches the job by environment, never on a command line. No torch
here: the job imports it when it starts training.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import submitit
from pydantic import ValidationError

from engine.config import ConfigError, RunConfig, SlurmConfig
from engine.launchers.local import RunProcess
from engine.lease import hand_over_begins, hand_over_refused
from engine.script_job import ScriptJob, is_script
from lab_notes import Attempt, LeaseLost, Notebook
from lab_notes.artifacts import recorded_path_here

POLL_SECONDS = 2.0  # how often a job's state is asked of Slurm: the worker's loop turns far faster
UNANSWERED_AT_MOST_SECONDS = 600.0  # a controller silent this long about a job: the worker stops following it
CANCEL_AFTER_STOP_SECONDS = 60.0  # a stopped run's job that has not ended by then is cancelled
GRACE_VARIABLE = "LAB_SLURM_STOP_GRACE_SECONDS"  # that grace, for a cluster whose jobs need longer to end
SIGNAL_BEFORE_LIMIT_SECONDS = 120  # the time-limit warning (USR2): long enough for a checkpoint to be written
SIGNAL_AT_LEAST_SECONDS = 10  # the least warning: enough to hand the run over and requeue the job
# slurmctld checks its jobs' timers every 30 s and sends the warning at the first check after which the next would
# be too late: up to this much earlier than asked (sbatch's manual allows for 60)
SLURM_TIMER_SECONDS = 30
# submitit stops requeueing after 3 time limits by default; a run resumes from its checkpoints as often as its length
# needs (a 14-day run in 1-hour jobs: 336), so the cap only ends a loop that no longer saves checkpoints
REQUEUES_AT_TIME_LIMIT_AT_MOST = 1000
ALIVE_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED"}
URL_VARIABLE = "LAB_NOTEBOOK_URL"


@dataclass(frozen=True)
class JobState:
    """What Slurm says of a job: its state (PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, …), reason, exit."""

    state: str
    reason: str
    exit_code: str

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    def in_words(self, job_id: str) -> str:
        reason = "" if self.reason in ("", "None") else f", reason {self.reason}"
        return f"Slurm job {job_id} ended {self.state}{reason} (exit code {self.exit_code})"


def parse_job_state(scontrol_line: str) -> JobState | None:
    """`scontrol show job -o ID`'s one line -> JobState; None when Slurm no longer knows the job."""
    fields = dict(part.split("=", 1) for part in scontrol_line.split() if "=" in part)
    if "JobState" not in fields:
        return None
    return JobState(fields["JobState"], fields.get("Reason", ""), fields.get("ExitCode", ""))


def job_state(job_id: str) -> JobState | None:
    """The job's state from the controller (it keeps ended jobs for MinJobAge; no accounting database needed);
    None when Slurm no longer knows the job. Raises OSError when the controller could not be asked (busy, down):
    that says nothing of the job."""
    found = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
    if found.returncode == 0:
        return parse_job_state(found.stdout)
    if "Invalid job id" in found.stderr:
        return None
    raise OSError(found.stderr.strip() or f"show job {job_id}: exit code {found.returncode}")


def job_in_words(job_id: str) -> str:
    """What the run page says of a job now: its state (and reason), or why that cannot be read here."""
    try:
        state = job_state(job_id)
    except (OSError, subprocess.SubprocessError) as error:
        return f"state unknown here ({type(error).__name__}: scontrol {error})"
    if state is None:
        return "no longer known to Slurm"
    return state.state + ("" if state.reason in ("", "None") else f", {state.reason}")


def job_files(folder: Path, job_id: str) -> dict[str, str]:
    """The tail (8 KB) of each task's stdout/stderr submitit kept for the job, by file name."""
    tails = {}
    for path in sorted(Path(folder).glob(f"{job_id}_*_log.*")):
        with open(path, "rb") as file:
            file.seek(max(0, path.stat().st_size - 8192))
            tails[path.name] = file.read().decode("utf-8", errors="replace")
    return tails


def sbatch_parameters(cfg: RunConfig | ScriptJob) -> dict[str, Any]:
    """submitit's parameters for one attempt of `cfg`: one task per rank, the run's Slurm settings."""
    slurm: SlurmConfig = cfg.runtime.slurm
    parameters: dict[str, Any] = {
        "nodes": cfg.runtime.nodes, "tasks_per_node": cfg.runtime.processes, "cpus_per_task": slurm.cpus_per_task,
        "timeout_min": slurm.time_limit_minutes,
        "slurm_signal_delay_s": warning_before_limit_seconds(slurm.time_limit_minutes),
        "slurm_additional_parameters": flags_as_parameters(slurm.extra_flags),
    }
    if slurm.partition:
        parameters["slurm_partition"] = slurm.partition
    if slurm.account:
        parameters["slurm_account"] = slurm.account
    if slurm.gpus_per_task:
        parameters["slurm_gpus_per_task"] = slurm.gpus_per_task
    return parameters


def warning_before_limit_seconds(time_limit_minutes: int) -> int:
    """How long before its time limit a job asks to be warned (`--signal=USR2@N`). Slurm warns up to one timer
    tick (30 s) earlier than asked, so a short job asks for half its limit less that tick, and is warned around
    its middle, after it has trained; never for less than 10 s, what a hand-over and a requeue take. A 1-minute
    job asks for 10 s and is warned 20–50 s in (asking for 30 s, it was warned at its start, before Python could
    catch the signal); from 5 minutes on a job asks for 2 minutes."""
    half_less_a_tick = time_limit_minutes * 30 - SLURM_TIMER_SECONDS
    return max(SIGNAL_AT_LEAST_SECONDS, min(SIGNAL_BEFORE_LIMIT_SECONDS, half_less_a_tick))


def stop_grace_seconds(environment: dict[str, str] | None = None) -> float:
    """How long a job may take to end after a stop is asked before it is cancelled: $LAB_SLURM_STOP_GRACE_SECONDS,
    else 60 s."""
    told = (os.environ if environment is None else environment).get(GRACE_VARIABLE, "")
    try:
        return float(told) if told.strip() else CANCEL_AFTER_STOP_SECONDS
    except ValueError:
        raise ValueError(f"{GRACE_VARIABLE}={told!r} is not a number of seconds") from None


def flags_as_parameters(flags: list[str]) -> dict[str, Any]:
    """["--qos=high", "--exclusive"] -> {"qos": "high", "exclusive": True}: submitit writes them as #SBATCH lines."""
    parameters: dict[str, Any] = {}
    for flag in flags:
        name, _, value = flag[2:].partition("=")
        parameters[name.replace("-", "_")] = value or True
    return parameters


def slurm_executor(cfg: RunConfig | ScriptJob, folder: Path, run_id: int) -> submitit.AutoExecutor:
    """submitit's executor for an attempt of run `run_id`: its files in `folder`, its name, `sbatch_parameters`.
    Nothing is submitted yet (tests read the batch script it would write)."""
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm",
                                     slurm_max_num_timeout=REQUEUES_AT_TIME_LIMIT_AT_MOST)
    executor.update_parameters(name=f"lab-run-{run_id}", **sbatch_parameters(cfg))
    return executor


class SlurmLauncher:
    """Starts attempts as Slurm jobs; their submitit files (script, pickles, each task's output) go to
    runs/ID/slurm/, which must be visible from the nodes (a shared folder on a real cluster)."""

    def __init__(self, notebook: Notebook) -> None:
        self.notebook = notebook

    def start(self, attempt: Attempt, *, url: str, runs_dir: Path, env: dict[str, str], log: Path) -> RunProcess:
        try:  # a run queued before a check existed (a newline in its account, over budget) is never submitted
            stored = self.notebook.get_run(attempt.run_id).config
            cfg = (ScriptJob if is_script(stored) else RunConfig).model_validate(stored)
        except ValidationError as error:
            raise OSError(f"its config does not validate: {ConfigError.from_validation_error(error)}") from None
        try:  # read before submitting: a bad setting fails the run (the worker says so), leaving no job behind
            grace = stop_grace_seconds()
        except ValueError as error:
            raise OSError(str(error)) from error
        executor = slurm_executor(cfg, runs_dir / str(attempt.run_id) / "slurm", attempt.run_id)
        # sbatch passes its own environment to the job: the URL goes there, not into the script or its arguments.
        os.environ[URL_VARIABLE] = url
        try:
            job = executor.submit(SlurmAttempt(), attempt, runs_dir, log)
        except Exception as error:  # noqa: BLE001 - sbatch refused it: the run's failure, said in Slurm's words
            raise OSError(f"sbatch refused the job: {error}") from error
        self.notebook.log_snapshot(attempt.run_id, "slurm", 0, {"job_id": job.job_id, "attempt": attempt.number,
                                                                "folder": str(executor.folder)},
                                   key=f"attempt-{attempt.number}", attempt=attempt)
        return SlurmJob(job.job_id, grace).as_run_process()


class SlurmJob:
    """One submitted job seen as the worker's child: `poll` is None while Slurm holds it (pending, running,
    requeued), then 0 when it completed and 1 otherwise, with Slurm's words in `ended_because`."""

    def __init__(self, job_id: str, grace_seconds: float = CANCEL_AFTER_STOP_SECONDS) -> None:
        self.job_id = job_id
        self.grace_seconds = grace_seconds
        self._checked_at = 0.0
        self._state: JobState | None = JobState("PENDING", "", "")
        self._cancelled = False  # by the worker: a stop it asked was not obeyed in time (or the worker shut down)
        self._unanswered_since: float | None = None  # when the controller stopped answering about the job
        self._unanswered: str = ""

    def poll(self) -> int | None:
        if time.monotonic() - self._checked_at >= POLL_SECONDS:
            self._checked_at = time.monotonic()
            try:
                self._state = job_state(self.job_id)
                self._unanswered_since = None
            except (OSError, subprocess.SubprocessError) as error:
                # A busy controller times out now and then (more so while it requeues and starts jobs): the job is
                # as it was last seen, until the controller has not answered for a long while.
                self._unanswered_since = self._unanswered_since or time.monotonic()
                self._unanswered = str(error)
        if self._unanswered_since is not None and time.monotonic() - self._unanswered_since > UNANSWERED_AT_MOST_SECONDS:
            return 1
        if self._state is not None and self._state.alive:
            return None
        return 0 if self._state is not None and self._state.state == "COMPLETED" else 1

    def ended_because(self) -> str:
        if self._unanswered_since is not None:
            return (f"Slurm could not be asked about job {self.job_id} for {UNANSWERED_AT_MOST_SECONDS / 60:g} min "
                    f"({self._unanswered}): the worker gave up following it")
        if self._state is None:
            return f"Slurm job {self.job_id} is no longer known to Slurm"
        said = self._state.in_words(self.job_id)
        if self._cancelled:  # Slurm says only CANCELLED: say who, and why
            return f"stopped without a checkpoint: a stop was asked, the job had not ended in time, so the " \
                   f"worker cancelled it ({said})"
        return said

    def cancel(self) -> None:
        self._cancelled = True
        subprocess.run(["scancel", self.job_id], capture_output=True, timeout=30)

    def as_run_process(self) -> RunProcess:
        return RunProcess(int(self.job_id.split("_")[0]), self.poll, self.cancel, ended_because=self.ended_because,
                          keeps_lease_while_alive=True, cancel_after_stop_seconds=self.grace_seconds)


# --- inside the job -------------------------------------------------------------------------------------------


class SlurmAttempt(submitit.helpers.Checkpointable):
    """Each task of the job calls this: rank 0 runs `attempt` as a local run's process would, the others are
    its ranks."""

    def __call__(self, attempt: Attempt, runs_dir: Path, log: Path) -> int:
        environment = submitit.JobEnvironment()
        if environment.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export()  # RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
        url = os.environ[URL_VARIABLE]
        if environment.global_rank != 0:
            return _train_as_other_rank(url, attempt)
        _print_to(log)
        from engine.run_process import run_one  # torch loads here, in the job

        print(f"run {attempt.run_id}: attempt {attempt.number} in Slurm job {environment.job_id} "
              f"({environment.num_tasks} task(s) on {environment.num_nodes} node(s))", flush=True)
        return run_one(url, attempt, runs_dir)

    # submitit calls checkpoint with __call__'s arguments, not its base class's *args, **kwargs
    def checkpoint(self, attempt: Attempt, runs_dir: Path, log: Path  # type: ignore[override]
                   ) -> submitit.helpers.DelayedSubmission | None:
        """At the time limit (rank 0 only, in submitit's signal handler): hand the run to a new attempt that
        resumes from the newest checkpoint on disk, and requeue the job with it; None (no requeue) when the run
        is no longer this attempt's (stopped, reaped, deleted)."""
        with Notebook(os.environ[URL_VARIABLE]) as notebook:
            saved = [c for c in notebook.checkpoints(attempt.run_id) if recorded_path_here(c.path, runs_dir).exists()]
            hand_over_begins()  # before: the heartbeat must not end the job between the hand-over and the requeue
            try:
                handed = notebook.hand_over(attempt, saved[-1].step if saved else 0)
            except LeaseLost:
                hand_over_refused()
                return None
        print(f"run {attempt.run_id}: time limit; attempt {handed.number} resumes from step "
              f"{saved[-1].step if saved else 0} when the job is requeued", flush=True)
        return submitit.helpers.DelayedSubmission(self, handed, runs_dir, log)


def _train_as_other_rank(url: str, attempt: Attempt) -> int:
    """A rank other than 0: trains its share, writes nothing (train() gives it a sink that drops everything)."""
    with Notebook(url) as notebook:
        stored = notebook.get_run(attempt.run_id).config
    if is_script(stored):  # each rank of a script run runs the command itself
        from engine.script_runs import run_as_other_rank

        return run_as_other_rank(ScriptJob.model_validate(stored))
    from engine.sinks import NullSink
    from engine.train import train

    train(RunConfig.model_validate(stored), NullSink())
    return 0


def _print_to(log: Path) -> None:
    """Rank 0's output goes to the run's log, as a local run's does: the worker copies it to the notebook."""
    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for fd in (1, 2):
        os.dup2(output, fd)
    os.close(output)
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
