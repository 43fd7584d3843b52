"""Background jobs. A worker claims queued runs from the notebook and runs each in its own subprocess; the
notebook is the only truth, so any process may die and the runs still end with an honest status.

- `Worker.serve()`: claim (a new attempt of the run), spawn, reap, fail runs whose attempt stopped heartbeating;
  one run's error is that run's, and a database outage is waited out. On SIGTERM/Ctrl-C it asks its runs to stop
  (each saves a checkpoint) and waits for them.

What a run's own process does is `engine.run_process.run_one`; how it is started, `engine.launchers`; the app
starts a worker with `engine.jobs.ensure_worker`.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


from engine.journal_drafts.drafter import Drafter
from engine.console import print_flushed
from engine.hosts import check_artifact_root, gpu_names, this_host_id
from engine.launchers.local import Launcher, RunProcess, start_launcher
from engine.lease import LEASE_LOST_EXIT_CODE, ORPHAN_EXIT_CODE
from engine.search import advance_searches, step_in_words
from lab_notes import Attempt, LeaseLost, Notebook, Unreachable
from lab_notes.backup import ScheduledBackups
from lab_notes.notebook_sink import HEARTBEAT_SECONDS, retry_while_unreachable

STALE_AFTER_SECONDS = 15.0
# A run process started cold imports torch before its first heartbeat: 30 s on a loaded 2-core machine, when another
# worker reaped it as stale. Its own worker holds the lease for it that long.
STARTING_UP_SECONDS = 120.0
SHUTDOWN_GRACE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 10.0
LOG_CAP_BYTES = 8 * 1024 * 1024
SEARCH_STEP_SECONDS = 0.25  # how often searches are told, pruned and asked: a late prune wastes steps
LOG_TAIL_BYTES = 64 * 1024  # more than the notebook keeps of a run's output (lab_notes.runs.LOG_TAIL_CHARS)


def device_slots(gpu_ids: list[str], max_parallel: int) -> list[dict[str, str]]:
    """The environment of each parallel slot: one run per visible GPU, or `max_parallel` runs on the CPU."""
    if gpu_ids:
        return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpu_ids]
    threads = str(max(1, (os.cpu_count() or 1) // max_parallel))
    # CPU runs share the cores: each gets its share of threads instead of all of them fighting, and its threads
    # sleep while they wait (spinning ones collapse when anything else wants the cores: 80 vs 183 steps/s for a
    # tiny run beside one CPU-bound process on 2 cores).
    return [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE"}
            for _ in range(max_parallel)]


def visible_gpus() -> list[str]:
    """GPU ids this worker may use: $CUDA_VISIBLE_DEVICES when set, else every device torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch  # only the worker process pays for this import

    return [str(i) for i in range(torch.cuda.device_count())]


def exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"process died, signal {-returncode} ({name})"
    if returncode == ORPHAN_EXIT_CODE:
        return "process stopped: its worker died"
    if returncode == LEASE_LOST_EXIT_CODE:
        return "process stopped: the run no longer belonged to it (reaped, resumed or deleted meanwhile)"
    return f"process exited with code {returncode} without a final status"


@dataclass
class Child:
    attempt: Attempt
    process: RunProcess
    log_path: Path
    offset: int = 0  # how much of the log the notebook has
    stop_seen_at: float | None = None  # when the worker first saw a stop request for it
    started_at: float = field(default_factory=time.monotonic)

    @property
    def starting_up(self) -> bool:
        """Whether it is still in its first STARTING_UP_SECONDS, when the worker heartbeats for it (a run that
        is importing torch cannot heartbeat for itself yet)."""
        return time.monotonic() - self.started_at < STARTING_UP_SECONDS


class Worker:
    def __init__(self, url: str, *, max_parallel: int = 1, runs_dir: str | Path = "runs",
                 stale_after: float = STALE_AFTER_SECONDS, gpu_ids: list[str] | None = None,
                 poll_seconds: float = 0.2, launcher: str = "warm", host_id: str | None = None,
                 create_runs_dir: bool = True) -> None:
        """`runs_dir` is the artifact root (checkpoints and output logs); with `create_runs_dir` False it must
        already be there (a shared folder), else ArtifactRootUnavailable before anything starts."""
        self.url = url
        self.host_id = host_id or this_host_id()
        self.runs_dir = check_artifact_root(Path(runs_dir), self.host_id, create=create_runs_dir).resolve()
        self.notebook = retry_while_unreachable(lambda: Notebook(url))
        self.stale_after = stale_after
        self.poll_seconds = poll_seconds
        gpus = visible_gpus() if gpu_ids is None else gpu_ids
        self.slots = device_slots(gpus, max_parallel)
        self.gpu_names = gpu_names(gpus)  # what runs pinned to a GPU kind are matched against, one per GPU slot
        self.launcher = start_launcher(launcher, self.slots)
        self._slurm: Launcher | None = None  # made at the first run with runtime.executor slurm
        self.children: dict[int, Child] = {}  # slot index -> child
        self.id = f"{self.host_id}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()
        self._blind_until = 0.0  # after an outage, runs get one stale period to heartbeat again
        self._next_search_step = 0.0
        self._backups = ScheduledBackups.from_environment(url, report=print_flushed)
        self.drafter = Drafter(url, report=print_flushed)  # journal drafts of ended runs, on a thread of its own

    # --- the loop ---------------------------------------------------------------------------------------------

    def serve(self, *, exit_when_idle: bool = False) -> None:
        """Run until SIGTERM/SIGINT (or, with exit_when_idle, until nothing is queued or running)."""
        retry_while_unreachable(self._register)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopping.set())
        print_flushed(f"worker {self.id}: host {self.host_id}, {len(self.slots)} slot(s) "
            f"{[s.get('CUDA_VISIBLE_DEVICES') or 'cpu' for s in self.slots]}, GPUs {self.gpu_names or 'none'}, "
            f"artifact root {self.runs_dir}")
        self.drafter.start()
        next_heartbeat, backoff = 0.0, 0.0
        try:
            while not self._stopping.is_set():
                try:
                    self._reap()
                    if time.monotonic() >= next_heartbeat:
                        self._heartbeat()
                        next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                    self._advance_searches()
                    self._fill_slots()
                    self._backups.start_if_due()
                    if (exit_when_idle and not self.children and not self.notebook.runs_page(status="queued", limit=1).total
                            and not self.notebook.active_searches()):
                        break
                    backoff = 0.0
                except Unreachable as error:
                    backoff = min(max(2 * backoff, 0.5), MAX_BACKOFF_SECONDS)
                    self._blind_until = time.monotonic() + backoff + self.stale_after
                    print_flushed(f"notebook unreachable ({type(error.orig).__name__}: {str(error.orig)[:120]}); "
                        f"retrying in {backoff:.1f} s")
                    self._stopping.wait(backoff)
                    continue
                except Exception:  # noqa: BLE001 - a bug met in one pass must not end the queue for everyone
                    traceback.print_exc()
                    print_flushed("worker: unexpected error (above); going on")
                    self._stopping.wait(1.0)
                    continue
                self._stopping.wait(self.poll_seconds)
            self._shut_down()
        finally:
            self.drafter.stop()  # writes the drafts still missing first
            try:
                self.notebook.retire_worker(self.id)
            except Unreachable:
                pass  # the lease expires by itself
            self.notebook.close()

    def _advance_searches(self) -> None:
        """Tell searches how their trials went, prune hopeless ones and queue the trials they ask for."""
        if time.monotonic() < self._next_search_step:
            return
        self._next_search_step = time.monotonic() + SEARCH_STEP_SECONDS
        for report in advance_searches(self.notebook):
            if report.asked or report.told or report.pruned or report.done:
                print_flushed(step_in_words(report))

    def _heartbeat(self) -> None:
        if not self.notebook.heartbeat_worker(self.id):  # swept as stale while paused: take a lease again
            self._register()
        for child in self.children.values():
            self._copy_output(child)
            if child.process.keeps_lease_while_alive:
                self._vouch_for(child)
            elif child.starting_up:
                self.notebook.heartbeat(child.attempt)
        if time.monotonic() < self._blind_until:
            return  # this worker could not see the database a moment ago: neither could the runs
        for run_id in self.notebook.fail_stale_attempts(self.stale_after):
            print_flushed(f"run {run_id}: marked failed (stale heartbeat)")

    def _vouch_for(self, child: Child) -> None:
        """A scheduler's job that is still alive (pending in its queue, or running) keeps its attempt's lease,
        following the run to the attempt its job handed it to at a time limit; a stop that it has not obeyed
        within its grace time cancels it."""
        if not self.notebook.heartbeat(child.attempt):
            if not self._follow_hand_over(child):
                return
            self.notebook.heartbeat(child.attempt)
        grace = child.process.cancel_after_stop_seconds
        if grace is not None and self.notebook.stop_requested(child.attempt.run_id):
            child.stop_seen_at = child.stop_seen_at or time.monotonic()
            if time.monotonic() - child.stop_seen_at > grace:
                print_flushed(f"run {child.attempt.run_id}: still running {grace:g} s after a stop request; cancelling")
                child.process.kill()

    def _follow_hand_over(self, child: Child) -> bool:
        """Whether the run moved on to a newer attempt that this worker holds (its scheduler's job handed it over
        at a time limit); `child` then follows it."""
        handed = self.notebook.current_attempt(child.attempt.run_id, self.id)
        if handed is None or handed.number <= child.attempt.number:
            return False
        child.attempt = handed
        return True

    def _register(self) -> None:
        self.notebook.register_worker(self.id, host=self.host_id, pid=os.getpid(), max_parallel=len(self.slots),
                                      gpus=self.gpu_names, cpu_slots=os.cpu_count())

    def _fill_slots(self) -> None:
        for slot, env in enumerate(self.slots):
            if slot in self.children:
                continue
            # a GPU slot offers its own GPU (a worker's GPUs may be of several kinds); a CPU slot none
            offered = self.gpu_names[slot:slot + 1] if self.gpu_names else []
            attempt = self.notebook.claim_next_run(self.id, host=self.host_id, gpus=offered)
            if attempt is None:
                if self.gpu_names:
                    continue  # nothing for this GPU may still leave a run for the next, of another kind
                return  # CPU slots are all alike: none of them would find one either
            try:
                self.children[slot] = self._spawn(attempt, env)
            except OSError as error:  # the run cannot start here: that is the run's failure, not the worker's
                self._end(attempt, f"could not start the run process: {error}")
                continue
            print_flushed(f"run {attempt.run_id}: attempt {attempt.number} started in slot {slot} "
                f"(pid {self.children[slot].process.pid})")

    def _spawn(self, attempt: Attempt, env: dict[str, str]) -> Child:
        run_dir = self.runs_dir / str(attempt.run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "output.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        env = {**env, "LAB_HOST_ID": self.host_id}  # the run names this host as its worker does
        with self._kept_alive(attempt):
            process = self._launcher_for(attempt).start(attempt, url=self.url, runs_dir=self.runs_dir, env=env,
                                                        log=log_path)
        child = Child(attempt, process, log_path, offset)
        try:
            self.notebook.set_pid(attempt, child.process.pid)
        except LeaseLost:
            pass  # stopped or reaped already: the child sees it at its first heartbeat and exits
        return child

    @contextmanager
    def _kept_alive(self, attempt: Attempt) -> Iterator[None]:
        """Heartbeats for `attempt`, this worker, and the children whose lease the worker keeps (see `_heartbeat`),
        from a thread, while the loop is busy starting `attempt`. A start can block: the warm server answers only
        once it has imported torch, 30 s and more on a loaded machine. In CI, another worker's sweep then reaped
        the claimed run as stale before its process existed (which then saw its lease lost and exited 71)."""
        done = threading.Event()
        kept = [attempt, *(child.attempt for child in self.children.values()
                           if child.process.keeps_lease_while_alive or child.starting_up)]

        def beat() -> None:
            while not done.wait(min(HEARTBEAT_SECONDS, self.stale_after / 3)):
                try:
                    self.notebook.heartbeat_worker(self.id)
                    for each in kept:  # fenced: one that was stopped or handed over meanwhile is left as it is
                        self.notebook.heartbeat(each)
                except Unreachable:  # or too busy: the loop waits out an outage once the start returns
                    pass

        beating = threading.Thread(target=beat, daemon=True, name=f"starting run {attempt.run_id}")
        beating.start()
        try:
            yield
        finally:
            done.set()
            beating.join()

    def _launcher_for(self, attempt: Attempt) -> Launcher:
        """The worker's own launcher, or Slurm for a run whose runtime.executor says so."""
        runtime = self.notebook.get_run(attempt.run_id).config.get("runtime", {})
        if runtime.get("executor", "local") != "slurm":
            return self.launcher
        if self._slurm is None:
            from engine.launchers.slurm import SlurmLauncher  # submitit, only for workers that submit to Slurm

            self._slurm = SlurmLauncher(self.notebook)
        return self._slurm

    def _reap(self) -> None:
        for slot, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[slot]
            self._copy_output(child)
            if child.process.keeps_lease_while_alive:
                # A job requeued at its time limit that then ended (cancelled, failed) ends the attempt it was
                # handed to, with its scheduler's reason, not a stale heartbeat later.
                self._follow_hand_over(child)
            told = child.process.ended_because
            # only if it ended without saying how
            self._end(child.attempt, told() if told else exit_reason(code), code)
            self.drafter.poke()
            print_flushed(f"run {child.attempt.run_id}: exit code {code}")

    def _end(self, attempt: Attempt, reason: str, exit_code: int | None = None) -> None:
        """Fail `attempt` if it is still the run's live one; record its exit code either way."""
        try:
            self.notebook.finish_attempt(attempt, "failed", reason=reason, exit_code=exit_code)
        except LeaseLost:
            if exit_code is not None:
                self.notebook.record_exit(attempt, exit_code)

    def _copy_output(self, child: Child) -> None:
        """Append what the run printed since last time (at most the notebook's tail of it) to its log tail in the
        notebook; past LOG_CAP_BYTES the file on disk is rotated, so it never grows without bound."""
        try:
            with open(child.log_path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(child.offset, size - LOG_TAIL_BYTES))
                fresh = log.read()
        except OSError:
            return
        if fresh:
            self.notebook.append_log(child.attempt.run_id, fresh.decode("utf-8", errors="replace"))
        child.offset = rotate_log(child.log_path, size, LOG_CAP_BYTES)

    def _shut_down(self) -> None:
        """Ask every run to stop at its next step (with a checkpoint) and wait for them."""
        for child in self.children.values():
            try:
                self.notebook.request_stop_of_attempt(child.attempt)
            except Unreachable:
                pass  # the notebook is away: the grace period and the kill below still hold
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            try:
                self._reap()
            except Unreachable:
                pass
            time.sleep(0.1)
        for child in self.children.values():
            child.process.kill()
        try:
            self._reap()
        except Unreachable:
            pass


def rotate_log(path: Path, read_up_to: int, cap: int) -> int:
    """Where the next read of `path` starts. Past `cap` bytes the file is copied to `path.1` and truncated in
    place (the run holds it open for appending, so its next line lands at the new start): the log on disk stays
    within about twice the cap, and nothing read so far is read again."""
    if read_up_to <= cap:
        return read_up_to
    try:
        shutil.copyfile(path, path.with_name(path.name + ".1"))
        os.truncate(path, 0)
    except OSError:
        return read_up_to
    return 0
