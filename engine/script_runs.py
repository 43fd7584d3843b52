"""A script run's own process: what `engine.run_process.run_one` does with an attempt whose config is a
`ScriptJob`. It starts the researcher's command (an argv list, never a shell, in its working folder) and stands
beside it until it ends:

- heartbeats the attempt (the script's own `lab_notes.start_run()` attaches to it and neither heartbeats nor ends
  it), records provenance of the script's folder and the script's system metrics;
- tails the run's TensorBoard logdir into the notebook (`engine.tensorboard_feed`);
- on a stop request sends SIGTERM to the script's process group, then SIGKILL after a grace period
  ($LAB_SCRIPT_STOP_GRACE_SECONDS, 10 s by default);
- ends the run from the exit code: 0 -> completed, any other -> failed with the code, stopped when asked to stop.

The script's output goes where this process's does (the run's log): the worker copies its tail to the notebook.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import psutil

from engine.console import print_flushed
from engine.hosts import process_is_running
from engine.lease import LEASE_LOST_EXIT_CODE, ORPHAN_EXIT_CODE, end_as_lease_lost
from engine.machine import machine_sample, process_sample
from engine.provenance import PACKAGES, collect_provenance, keep_diff
from engine.config import ConfigError
from engine.script_job import ScriptJob, validate_script
from engine.tensorboard_feed import TensorBoardFeed
from lab_notes import Attempt, LeaseLost, Notebook, NotebookSink
from lab_notes.artifacts import path_to_record
from lab_notes.notebook_sink import retry_while_unreachable

GRACE_VARIABLE = "LAB_SCRIPT_STOP_GRACE_SECONDS"
FIRST_SAMPLE_SECONDS = 0.5
STOP_GRACE_SECONDS = 10.0
TICK_SECONDS = 0.25  # how often the logdir is read and the script looked at: well inside the 2 s a point may lag
PYTHON_NAMES = ("python", "python3")
PR_SET_PDEATHSIG = 1
try:  # Linux: a script's process is killed when the process that started it dies, even by SIGKILL
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _PRCTL = None


def die_with(parent: int) -> Callable[[], None]:
    """What the script's process runs before it execs: ask for SIGKILL when `parent` (this process) dies, and go
    at once if it already has; only a call into libc, nothing that takes a lock another thread may hold."""
    def arrange() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(ORPHAN_EXIT_CODE)
    return arrange



def stop_grace_seconds() -> float:
    told = os.environ.get(GRACE_VARIABLE, "").strip()
    try:
        return float(told) if told else STOP_GRACE_SECONDS
    except ValueError:
        return STOP_GRACE_SECONDS


def why_it_cannot_start(job: ScriptJob, env: dict[str, str]) -> str | None:
    """Why the command cannot run at all (a missing or non-executable program, a missing script file), in words
    naming it; None when it can be tried."""
    folder = job.folder()
    program = job.command[0]
    found = (str(folder / program) if os.sep in program else shutil.which(program, path=env.get("PATH")))
    if found is None or not Path(found).exists():
        return f"command.0: the program '{program}' does not exist (looked in {folder if os.sep in program else 'PATH'})"
    if not Path(found).is_file() or not os.access(found, os.X_OK):
        return f"command.0: '{program}' is not executable (chmod +x it, or run it through its interpreter)"
    if Path(program).name.startswith(PYTHON_NAMES) and len(job.command) > 1 and not job.command[1].startswith("-"):
        script = folder / job.command[1]
        if not script.is_file():
            return f"command.1: the script '{job.command[1]}' does not exist in {folder}"
        if not os.access(script, os.R_OK):
            return f"command.1: the script '{job.command[1]}' is not readable"
    return None


VERSIONS_OF = ("import importlib.metadata as m, json, sys\n"
               "def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return None\n"
               "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")


def script_packages(job: ScriptJob, env: dict[str, str]) -> dict[str, str | None] | None:
    """The package versions the script's own interpreter sees (when its program is a Python), else None: the
    worker's venv need not be the script's."""
    if not Path(job.command[0]).name.startswith(PYTHON_NAMES):
        return None
    try:
        asked = subprocess.run([job.command[0], "-c", VERSIONS_OF, *PACKAGES], cwd=job.folder(), env=env,
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return json.loads(asked.stdout) if asked.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def exit_in_words(code: int) -> str:
    if code < 0:
        try:
            return f"the script was killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"the script was killed by signal {-code}"
    return f"the script exited with code {code}"


def as_exit_code(code: int) -> int:
    """A returncode as a process's exit status (a signal N as 128+N, as a shell says it)."""
    return 128 - code if code < 0 else code


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ScriptSupervisor:
    """One attempt of a script run, from the start of its command to its final status."""

    def __init__(self, url: str, attempt: Attempt, job: ScriptJob, runs_dir: Path, *, copies: int) -> None:
        self.url, self.attempt, self.job, self.runs_dir = url, attempt, job, Path(runs_dir)
        self.copies = copies
        self.run_dir = self.runs_dir / str(attempt.run_id)
        self.logdir = job.logdir(self.run_dir)
        self.notebook = retry_while_unreachable(lambda: Notebook(url))
        self.sink = NotebookSink(self.notebook, attempt, on_lease_lost=self._lease_lost, artifact_root=runs_dir)
        self.processes: list[subprocess.Popen] = []
        self._ending = threading.Lock()

    # --- ending from outside ------------------------------------------------------------------------------------

    def _kill_all(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _lease_lost(self) -> None:
        end_as_lease_lost(f"run {self.attempt.run_id}: attempt {self.attempt.number} no longer owns the run; "
                          "killing the script", before=self._kill_all)

    def watch_worker(self, worker_pid: int) -> None:
        """The script lives only as long as its worker: when the worker dies, kill it and fail the run."""
        parent = os.getppid()
        while os.getppid() == parent and (parent == worker_pid or process_is_running(worker_pid)):
            time.sleep(0.5)
        self._kill_all()
        try:
            self.sink.finish("failed", reason=f"its worker (pid {worker_pid}) died")
        finally:
            os._exit(ORPHAN_EXIT_CODE)

    # --- the run ------------------------------------------------------------------------------------------------

    def environment(self, rank: int) -> dict[str, str]:
        env = {**os.environ, **self.job.env, "TENSORBOARD_LOGDIR": str(self.logdir)}
        env.pop("LAB_NOTEBOOK_URL", None)
        if rank == 0:  # the rank that logs: its start_run() attaches to this attempt
            env.update({"LAB_NOTEBOOK_URL": self.url, "LAB_RUN_ID": str(self.attempt.run_id),
                        "LAB_ATTEMPT": str(self.attempt.number), "LAB_ATTEMPT_TOKEN": self.attempt.token})
        if self.copies > 1:
            env.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(self.copies)})
        return env

    def record_provenance(self, env: dict[str, str]) -> None:
        folder = self.job.folder()
        diff_file = self.run_dir / "provenance" / f"attempt-{self.attempt.number}.diff"
        provenance = keep_diff(collect_provenance(self.job.command, folder=folder), diff_file)
        provenance["cwd"] = str(folder)
        provenance["packages"] = script_packages(self.job, env) or provenance.get("packages", {})
        if "diff_file" in provenance["git"]:
            provenance["git"]["diff_file"] = path_to_record(diff_file, self.runs_dir)
        self.sink.log_event("provenance", {"step": 0, "attempt": self.attempt.number, **provenance})

    def run(self) -> int:
        """Start the command, follow it, end the run; the exit status this process should end with."""
        env0 = self.environment(0)
        cannot = why_it_cannot_start(self.job, env0)
        if cannot is not None:
            return self.finish("failed", cannot, None)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.record_provenance(env0)
        feed = TensorBoardFeed(self.notebook, self.attempt, self.logdir, report=print_flushed)  # before the script
        port = str(free_port()) if self.copies > 1 else ""
        print_flushed(f"run {self.attempt.run_id}: starting {self.job.command!r} in {self.job.folder()} "
            f"({self.copies} process(es)); TensorBoard logdir {self.logdir}")
        try:
            for rank in range(self.copies):
                env = self.environment(rank) if rank else env0
                if port:
                    env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
                self.processes.append(subprocess.Popen(self.job.command, cwd=self.job.folder(), env=env,
                                                       stdin=subprocess.DEVNULL, start_new_session=True,
                                                       preexec_fn=die_with(os.getpid())))
        except OSError as error:
            self._kill_all()
            return self.finish("failed", f"command.0: could not start '{self.job.command[0]}': {error}", None)
        code = self.follow(feed)
        feed.poll()  # what the script wrote last
        if self.sink.stop_requested():
            return self.finish("stopped", f"stopped on request ({exit_in_words(code)})", code)
        if code == 0:
            return self.finish("completed", None, 0)
        return self.finish("failed", exit_in_words(code), code)

    def follow(self, feed: TensorBoardFeed) -> int:
        """Tail the logdir, sample the system and obey a stop until every copy has ended; rank 0's exit code
        (or the first non-zero one)."""
        sampler = _ScriptSampler(self.processes[0].pid, self.job.runtime.system_metrics_seconds)
        stop_sent_at: float | None = None
        grace = stop_grace_seconds()
        while any(p.poll() is None for p in self.processes):
            feed.poll()
            sample = sampler.take()
            if sample:
                self.notebook.log_metrics(self.attempt.run_id, feed.last_step, sample, attempt=self.attempt)
            if stop_sent_at is None and self.sink.stop_requested():
                print_flushed(f"run {self.attempt.run_id}: stop requested; SIGTERM to the script, SIGKILL in {grace:g} s")
                self._signal_all(signal.SIGTERM)
                stop_sent_at = time.monotonic()
            elif stop_sent_at is not None and time.monotonic() - stop_sent_at > grace:
                print_flushed(f"run {self.attempt.run_id}: still running {grace:g} s after SIGTERM; SIGKILL")
                self._signal_all(signal.SIGKILL)
                stop_sent_at = float("inf")
            time.sleep(TICK_SECONDS)
        if last := sampler.take_last():
            self.notebook.log_metrics(self.attempt.run_id, feed.last_step, last, attempt=self.attempt)
        codes = [p.returncode for p in self.processes]
        return next((c for c in codes if c != 0), 0)

    def _signal_all(self, sig: signal.Signals) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass

    def finish(self, status: str, reason: str | None, code: int | None) -> int:
        """End the attempt once; the exit status for this process (the script's, as a shell would say it)."""
        print_flushed(f"run {self.attempt.run_id}: ended {status}" + (f": {reason}" if reason else ""))
        self.sink.stop_heartbeat()
        exit_code = None if code is None else as_exit_code(code)
        try:
            retry_while_unreachable(lambda: self.notebook.finish_attempt(self.attempt, status, reason=reason,
                                                                         exit_code=exit_code))
        except LeaseLost:
            return LEASE_LOST_EXIT_CODE
        return 2 if exit_code is None else exit_code


class _ScriptSampler:
    """The engine's system sampler, measuring the script's process (and its children) instead of this one."""

    def __init__(self, pid: int, interval: float) -> None:
        self.interval = interval
        # the first sample half a second in (cpu_percent needs a span to measure), so a short script gets one too
        self.due = time.monotonic() + min(interval, FIRST_SAMPLE_SECONDS)
        self.taken = False
        try:
            self.process: psutil.Process | None = psutil.Process(pid)
            self.process.cpu_percent(None)
            psutil.cpu_percent(None)
        except psutil.Error:
            self.process = None

    def take(self) -> dict[str, float] | None:
        """A sample when one is due."""
        if self.interval <= 0 or time.monotonic() < self.due:
            return None
        self.due = time.monotonic() + self.interval
        return self._sample(self.process)

    def take_last(self) -> dict[str, float] | None:
        """Once the script has ended: the machine's sample if none was ever taken, so a script shorter than the
        first span still leaves one (its process is gone, so only the machine's)."""
        return None if self.interval <= 0 or self.taken else self._sample(None)

    def _sample(self, process: psutil.Process | None) -> dict[str, float]:
        self.taken = True
        sample = machine_sample()
        if process is not None:
            try:
                sample |= process_sample(process, "script")
            except psutil.Error:
                pass  # the script ended between the look and the sample: the machine's values stand alone
        return sample


def run_script(url: str, attempt: Attempt, job: ScriptJob, runs_dir: str | Path, worker_pid: int | None = None,
               *, copies: int | None = None) -> int:
    """Run one attempt of a script run (in the worker's child process, or rank 0 of a Slurm job with
    `copies` 1: Slurm starts the other ranks)."""
    supervisor = ScriptSupervisor(url, attempt, job, Path(runs_dir),
                                  copies=job.runtime.processes if copies is None else copies)
    if worker_pid is not None:
        threading.Thread(target=supervisor.watch_worker, args=(worker_pid,), daemon=True).start()
    try:
        return supervisor.run()
    except Exception as error:  # noqa: BLE001 - any crash of ours becomes the run's failure reason
        supervisor._kill_all()
        return supervisor.finish("failed", f"{type(error).__name__}: {error}", None)
    finally:
        supervisor.sink.stop_heartbeat()
        try:
            supervisor.notebook.close()
        except LeaseLost:
            pass


def run_as_other_rank(job: ScriptJob) -> int:
    """A Slurm task other than rank 0: runs the command itself (RANK etc. come from Slurm's environment)."""
    env = {**os.environ, **job.env}
    env.pop("LAB_NOTEBOOK_URL", None)
    return as_exit_code(subprocess.run(job.command, cwd=job.folder(), env=env, stdin=subprocess.DEVNULL).returncode)


def run_stored_script(url: str, attempt: Attempt, config: dict, runs_dir: str | Path,
                      worker_pid: int | None) -> int:
    """`run_one`'s branch for a script run's stored config. Under a worker (`worker_pid`) this process starts
    every local copy; in a Slurm job (no worker pid) Slurm started one task per rank and this is rank 0."""
    try:
        job = validate_script(config)
    except ConfigError as error:
        with Notebook(url) as notebook:
            try:
                notebook.finish_attempt(attempt, "failed", reason=f"stored script job no longer validates: {error}")
            except LeaseLost:
                return LEASE_LOST_EXIT_CODE
        return 2
    return run_script(url, attempt, job, runs_dir, worker_pid, copies=None if worker_pid is not None else 1)
