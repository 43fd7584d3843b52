"""Background jobs. A worker claims queued runs from the notebook and runs each in its own subprocess; the
notebook is the only truth, so any process may die and the runs still end with an honest status.

- `Worker.serve()`: claim, spawn, heartbeat (~2 s), reap, mark stale runs failed; on SIGTERM/Ctrl-C it asks its
  runs to stop (each saves a checkpoint) and waits for them.
- `run_one(url, run_id, runs_dir)`: what a run's subprocess does (`python -m engine run-child …`).
- `ensure_worker(url)`: start a detached worker when no live lease says one is running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.config import ConfigError, validate_config
from lab_notes import Notebook, NotebookSink

HEARTBEAT_SECONDS = 2.0
STALE_AFTER_SECONDS = 15.0
SHUTDOWN_GRACE_SECONDS = 60.0
ORPHAN_EXIT_CODE = 70
ENGINE_ROOT = Path(__file__).resolve().parents[1]


def device_slots(gpu_ids: list[str], max_parallel: int) -> list[dict[str, str]]:
    """The environment of each parallel slot: one run per visible GPU, or `max_parallel` runs on the CPU."""
    if gpu_ids:
        return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpu_ids]
    threads = str(max(1, (os.cpu_count() or 1) // max_parallel))
    # CPU runs share the cores: each gets its share of threads instead of all of them fighting.
    return [{"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads} for _ in range(max_parallel)]


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
    return f"process exited with code {returncode} without a final status"


@dataclass
class Child:
    run_id: int
    process: subprocess.Popen
    log_path: Path
    log: IO[bytes]
    offset: int = 0


class Worker:
    def __init__(self, url: str, *, max_parallel: int = 1, runs_dir: str | Path = "runs",
                 stale_after: float = STALE_AFTER_SECONDS, gpu_ids: list[str] | None = None,
                 poll_seconds: float = 0.2) -> None:
        self.url = url
        self.notebook = Notebook(url)
        self.runs_dir = Path(runs_dir).resolve()
        self.stale_after = stale_after
        self.poll_seconds = poll_seconds
        gpus = visible_gpus() if gpu_ids is None else gpu_ids
        self.slots = device_slots(gpus, max_parallel)
        self.children: dict[int, Child] = {}  # slot index -> child
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stopping = threading.Event()

    # --- the loop ---------------------------------------------------------------------------------------------

    def serve(self, *, exit_when_idle: bool = False) -> None:
        """Run until SIGTERM/SIGINT (or, with exit_when_idle, until nothing is queued or running)."""
        self.notebook.register_worker(self.id, host=socket.gethostname(), pid=os.getpid(),
                                      max_parallel=len(self.slots))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopping.set())
        print(f"worker {self.id}: {len(self.slots)} slot(s) "
              f"{[s.get('CUDA_VISIBLE_DEVICES') or 'cpu' for s in self.slots]}", flush=True)
        next_heartbeat = 0.0
        try:
            while True:
                self._reap()
                if time.monotonic() >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
                if self._stopping.is_set():
                    break
                self._fill_slots()
                if exit_when_idle and not self.children and not self.notebook.list_runs(status="queued"):
                    break
                self._stopping.wait(self.poll_seconds)
            self._shut_down()
        finally:
            self.notebook.retire_worker(self.id)
            self.notebook.close()

    def _heartbeat(self) -> None:
        self.notebook.heartbeat_worker(self.id, [c.run_id for c in self.children.values()])
        for child in self.children.values():
            self._copy_output(child)
        for run_id in self.notebook.fail_stale_runs(self.stale_after):
            print(f"run {run_id}: marked failed (stale heartbeat)", flush=True)

    def _fill_slots(self) -> None:
        for slot, env in enumerate(self.slots):
            if slot in self.children:
                continue
            run = self.notebook.claim_next_run(self.id)
            if run is None:
                return
            self.children[slot] = self._spawn(run.id, env)
            print(f"run {run.id}: started in slot {slot} (pid {self.children[slot].process.pid})", flush=True)

    def _spawn(self, run_id: int, env: dict[str, str]) -> Child:
        run_dir = self.runs_dir / str(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / "output.log"
        log = open(log_path, "ab")
        offset = log.tell()
        command = [sys.executable, "-u", "-m", "engine", "run-child", str(run_id), "--db", self.url,
                   "--runs-dir", str(self.runs_dir), "--worker-pid", str(os.getpid())]
        process = subprocess.Popen(command, cwd=ENGINE_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env}, start_new_session=True)
        self.notebook.set_pid(run_id, process.pid)
        return Child(run_id, process, log_path, log, offset)

    def _reap(self) -> None:
        for slot, child in list(self.children.items()):
            code = child.process.poll()
            if code is None:
                continue
            del self.children[slot]
            child.log.close()
            self._copy_output(child)
            run = self.notebook.get_run(child.run_id)
            if run.status == "running":  # the process ended without saying how: that is a failure
                self.notebook.set_status(child.run_id, "failed", reason=exit_reason(code), exit_code=code)
            else:
                self.notebook.set_exit_code(child.run_id, code)
            print(f"run {child.run_id}: exit code {code}", flush=True)

    def _copy_output(self, child: Child) -> None:
        """Append what the run printed since last time to its log tail in the notebook."""
        try:
            with open(child.log_path, "rb") as log:
                log.seek(child.offset)
                fresh = log.read()
        except OSError:
            return
        if fresh:
            child.offset += len(fresh)
            self.notebook.append_log(child.run_id, fresh.decode("utf-8", errors="replace"))

    def _shut_down(self) -> None:
        """Ask every run to stop at its next step (with a checkpoint) and wait for them."""
        for child in self.children.values():
            self.notebook.request_stop(child.run_id)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            self._reap()
            time.sleep(0.1)
        for child in self.children.values():
            child.process.kill()
        self._reap()


# --- a run's subprocess ---------------------------------------------------------------------------------------


def _exit_if_orphaned(parent: int) -> None:
    """A run's process lives only as long as its worker: if the worker dies, the run stops at once, and the
    stale heartbeat (which only the worker writes) tells the notebook. `parent` is the worker's pid as the worker
    said it, so a worker that died while this process was still starting is noticed too."""
    while True:
        if os.getppid() != parent:
            os._exit(ORPHAN_EXIT_CODE)
        time.sleep(0.5)


def run_one(url: str, run_id: int, runs_dir: str | Path, worker_pid: int | None = None) -> int:
    """Train run `run_id` of the notebook at `url`, resuming from its last checkpoint if it has one; when
    `worker_pid` is given, exit as soon as that worker is no longer this process's parent."""
    if worker_pid is not None:
        threading.Thread(target=_exit_if_orphaned, args=(worker_pid,), daemon=True).start()
    from engine.train import train  # torch loads here, in the run's own process
    notebook = Notebook(url)
    try:
        run = notebook.get_run(run_id)
        try:
            cfg = validate_config(run.config)
        except ConfigError as error:
            notebook.set_status(run_id, "failed", reason=f"stored config no longer validates: {error}")
            print(f"run {run_id}: stored config no longer validates: {error}", flush=True)
            return 2
        checkpoint_dir = Path(runs_dir) / str(run_id) / "checkpoints"
        resume_from = None
        saved = [c for c in notebook.checkpoints(run_id) if Path(c.path).exists()]
        if saved:
            resume_from = saved[-1].path
            notebook.discard_after(run_id, saved[-1].step)  # those steps are trained again: no duplicates
            print(f"run {run_id}: resuming from step {saved[-1].step}", flush=True)
        try:
            result = train(cfg, NotebookSink(notebook, run_id), resume_from=resume_from,
                           checkpoint_dir=checkpoint_dir)
        except Exception as error:  # noqa: BLE001 - any crash becomes the run's failure reason
            traceback.print_exc()
            notebook.set_status(run_id, "failed", reason=f"{type(error).__name__}: {error}")
            return 1
        print(f"run {run_id}: {result.status} at step {result.step}", flush=True)
        return 0
    finally:
        notebook.close()


# --- starting a worker from the app -------------------------------------------------------------------------


def ensure_worker(url: str, *, runs_dir: str | Path = "runs", max_parallel: int = 1,
                  stale_after: float = STALE_AFTER_SECONDS) -> int | None:
    """Start a detached worker unless a live one holds a lease; returns the new worker's pid, or None."""
    with Notebook(url) as notebook:
        if notebook.live_workers(stale_after):
            return None
    log_dir = Path(runs_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "worker.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "engine", "worker", "--db", url, "--runs-dir", str(log_dir),
             "--max-parallel", str(max_parallel)],
            cwd=ENGINE_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    return process.pid
