"""A run's own process: what `python -m engine run-child …` (or a process forked from the warm launcher, or rank 0
of a Slurm job) does with one attempt. It heartbeats its own lease and stops by itself, writing nothing more, once
the run no longer belongs to it; it ends, failing its run, as soon as its worker is gone. Torch loads here only
when training starts.
"""

from __future__ import annotations

import os
import re
import threading
import time
import traceback
from pathlib import Path

from engine.config import ConfigError, validate_config
from engine.console import print_flushed
from engine.hosts import process_is_running, this_host_id
from engine.lease import LEASE_LOST_EXIT_CODE, ORPHAN_EXIT_CODE, end_as_lease_lost
from engine.provenance import collect_provenance, keep_diff
from engine.script_job import is_script
from lab_notes import Attempt, LeaseLost, Notebook, NotebookSink
from lab_notes.artifacts import path_to_record, recorded_path_here
from lab_notes.notebook_sink import retry_while_unreachable

CHECKPOINT_STEP = re.compile(r"step_(\d+)\.pt(\.partial)?$")



def _watch_worker(worker: int, sink: NotebookSink) -> None:
    """A run's process lives only as long as its worker: if the worker dies, the run ends as failed at once,
    saying so. A cold run's parent is the worker; a warm run's is the launcher, which outlives the worker as long
    as any run it forked does (each holds the launcher's keep-alive pipe), so the worker's own pid is watched too.
    `worker` is that pid as the worker said it, so a worker that died while this process was starting is noticed
    as well."""
    parent = os.getppid()
    while os.getppid() == parent and (parent == worker or process_is_running(worker)):
        time.sleep(0.5)
    try:
        sink.finish("failed", reason=f"its worker (pid {worker}) died")
    finally:
        os._exit(ORPHAN_EXIT_CODE)


def _lease_lost(attempt: Attempt) -> None:
    end_as_lease_lost(f"run {attempt.run_id}: attempt {attempt.number} no longer owns the run; stopping, writing "
                      "nothing more")


def drop_checkpoints_after(directory: Path, step: int) -> None:
    """Checkpoint files past the step a run resumes from belong to discarded history (an attempt that lost the
    run may have written them): left there, they would outrank the new ones when old files are pruned."""
    for path in directory.glob("step_*.pt*") if directory.is_dir() else ():
        found = CHECKPOINT_STEP.search(path.name)
        if found and int(found.group(1)) > step:
            path.unlink(missing_ok=True)


def run_one(url: str, attempt: Attempt, runs_dir: str | Path, worker_pid: int | None = None) -> int:
    """Train `attempt` of its run in the notebook at `url`, resuming from the run's last checkpoint if it has
    one; when `worker_pid` is given, end as soon as that worker is no longer this process's parent."""
    notebook = retry_while_unreachable(lambda: Notebook(url))
    stored = retry_while_unreachable(lambda: notebook.get_run(attempt.run_id).config)
    if is_script(stored):  # the researcher's own command: this process stands beside it (engine.script_runs)
        notebook.close()
        from engine.script_runs import run_stored_script

        return run_stored_script(url, attempt, stored, runs_dir, worker_pid)
    sink = NotebookSink(notebook, attempt, on_lease_lost=lambda: _lease_lost(attempt), artifact_root=runs_dir)
    if worker_pid is not None:
        threading.Thread(target=_watch_worker, args=(worker_pid, sink), daemon=True).start()
    run_id = attempt.run_id
    try:
        try:
            cfg = validate_config(notebook.get_run(run_id).config)
        except ConfigError as error:
            print_flushed(f"run {run_id}: stored config no longer validates: {error}")
            sink.finish("failed", reason=f"stored config no longer validates: {error}")
            return 2
        from engine.train import train  # torch loads here, in the run's own process

        checkpoint_dir = Path(runs_dir) / str(run_id) / "checkpoints"
        checkpoint_dir.parent.mkdir(parents=True, exist_ok=True)  # the run's folder, as the worker makes it
        # A resume has discarded the records after the checkpoint it chose: the newest record is where to go on.
        saved = notebook.checkpoints(run_id)
        resume_from = recorded_path_here(saved[-1].path, runs_dir) if saved else None
        if resume_from is not None and not resume_from.exists():
            reason = (f"checkpoint {saved[-1].path} (step {saved[-1].step}) is not under the artifact root "
                      f"{Path(runs_dir).resolve()} on host {this_host_id()}: is the shared folder mounted here?")
            print_flushed(f"run {run_id}: {reason}")
            sink.finish("failed", reason=reason)
            return 2
        drop_checkpoints_after(checkpoint_dir, saved[-1].step if saved else 0)
        if saved:
            print_flushed(f"run {run_id}: resuming from step {saved[-1].step} on host {this_host_id()}")
        diff_file = Path(runs_dir) / str(run_id) / "provenance" / f"attempt-{attempt.number}.diff"
        provenance = keep_diff(collect_provenance(), diff_file)
        if "diff_file" in provenance["git"]:  # recorded as the checkpoints are: relative to the shared root
            provenance["git"]["diff_file"] = path_to_record(diff_file, runs_dir)
        sink.log_event("provenance", {"step": saved[-1].step if saved else 0, "attempt": attempt.number,
                                      **provenance})
        result = train(cfg, sink, resume_from=resume_from, run_dir=checkpoint_dir.parent)
        print_flushed(f"run {run_id}: {result.status} at step {result.step}")
        return 0
    except LeaseLost as error:
        print_flushed(f"run {run_id}: {error}; stopping")
        return LEASE_LOST_EXIT_CODE
    except Exception as error:  # noqa: BLE001 - any crash becomes the run's failure reason
        traceback.print_exc()
        try:
            sink.finish("failed", reason=f"{type(error).__name__}: {error}")
        except LeaseLost:
            return LEASE_LOST_EXIT_CODE
        return 1
    finally:
        sink.stop_heartbeat()
        try:
            notebook.close()
        except LeaseLost:
            pass
