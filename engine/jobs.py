"""The one service behind the app and the CLI for what a person does to runs: submit, stop, resume, delete.
A status changes only in `lab_notes.runs` (compare-and-set); this adds what lies outside the database: lint,
starting a worker, choosing the checkpoint to resume from, the run's files, and who may: stop, resume and delete
ask `lab_notes.owners.may_change` (the rule the pages show) and refuse with its reason. No torch here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from engine.config import Problem, RunConfig, data_root
from engine.lint import lint
from engine.hosts import process_is_running, this_host_id
from engine.launchers.local import ENGINE_ROOT
from engine.provenance import code_differs, git_state
from engine.script_job import ScriptJob, code_root, is_script, parse_env, validate_script  # noqa: F401 - for pages
from engine.sweeps import Mode, expand
from lab_notes import Notebook, Worker
from lab_notes.artifacts import artifact_root, recorded_path_here
from lab_notes.owners import LOCAL_USER, NotAllowed, Person, refuse_unless_allowed
from lab_notes.runs import Refused
from lab_notes.sweeps import SweepRun

RUNS_DIR = artifact_root()  # $LAB_ARTIFACT_ROOT, else the older $LAB_RUNS_DIR, else ./runs
LIVE_WORKER_SECONDS = 15.0


@dataclass(frozen=True)
class Submitted:
    run_id: int
    warnings: list[Problem]
    worker_pid: int | None  # a worker this submit started; None when one was already alive (or not asked)


def submit(notebook: Notebook, cfg: RunConfig, *, name: str, preset: str | None, parent_id: int | None = None,
           start_worker: bool = False, runs_dir: Path = RUNS_DIR, owner: str | None = None,
           warnings: list[Problem] | None = None) -> Submitted:
    """Queue `cfg` with its lint warnings (and the run it was cloned from), made by `owner` (None: the local
    user); with `start_worker`, make sure a live worker will take it, starting one when none holds a lease (the
    previous one may have died). `warnings`: lint(cfg) when the caller has it already (the form showed it), so a
    submission is linted once."""
    warnings = lint(cfg) if warnings is None else warnings
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name=name, preset=preset, parent_id=parent_id,
                             lint=[{"path": w.path, "message": w.message} for w in warnings], owner=owner,
                             pinned_host=cfg.runtime.host or None, pinned_gpu=cfg.runtime.gpu_kind or None)
    pid = ensure_worker(notebook.url, runs_dir=runs_dir) if start_worker else None
    return Submitted(run_id, warnings, pid)


def submit_script(notebook: Notebook, job: ScriptJob, *, name: str, parent_id: int | None = None,
                  start_worker: bool = False, runs_dir: Path = RUNS_DIR, owner: str | None = None) -> Submitted:
    """Queue a script run (`engine.script_job`): as `submit`, with no lint (the engine knows nothing of it)."""
    run_id = notebook.create_run(job.model_dump(mode="json"), name=name, preset=None, parent_id=parent_id, owner=owner,
                             pinned_host=job.runtime.host or None, pinned_gpu=job.runtime.gpu_kind or None)
    pid = ensure_worker(notebook.url, runs_dir=runs_dir) if start_worker else None
    return Submitted(run_id, [], pid)


@dataclass(frozen=True)
class SubmittedSweep:
    sweep_id: int
    run_ids: list[int]
    worker_pid: int | None


def submit_sweep(notebook: Notebook, base: RunConfig, fields: dict[str, list[Any]], mode: Mode = "grid", *, name: str,
                 preset: str | None, start_worker: bool = False, runs_dir: Path = RUNS_DIR,
                 owner: str | None = None) -> SubmittedSweep:
    """Queue one run per point of the sweep (all validated first, then all queued at once, or none), each named
    by its swept values and linted; the worker's parallelism runs them."""
    runs = [SweepRun(f"{name} [{point.label}]", point.config.model_dump(mode="json"),
                     [{"path": w.path, "message": w.message} for w in lint(point.config)],
                     pinned_host=point.config.runtime.host or None, pinned_gpu=point.config.runtime.gpu_kind or None)
            for point in expand(base, fields, mode)]
    sweep_id = notebook.create_sweep(name=name, preset=preset, mode=mode, fields=fields, runs=runs, owner=owner)
    pid = ensure_worker(notebook.url, runs_dir=runs_dir) if start_worker else None
    return SubmittedSweep(sweep_id, notebook.get_sweep(sweep_id).run_ids, pid)


def request_stop(notebook: Notebook, run_id: int, *, by: Person = LOCAL_USER) -> str:
    """Stop a queued run at once, or ask a running one to stop at its next step (with a checkpoint). Only its
    owner or an admin (`by`) may: NotAllowed otherwise."""
    # A run's owner never changes once it is queued: checking it before the status's compare-and-set is enough.
    refuse_unless_allowed(by, notebook.get_run(run_id).owner, f"stop run {run_id}")
    if notebook.request_stop(run_id) == "stopped":
        return f"run {run_id}: stopped before it started"
    return f"run {run_id}: stop requested; it stops at its next step, with a checkpoint"


def resume(notebook: Notebook, run_id: int, runs_dir: Path = RUNS_DIR, *, by: Person = LOCAL_USER) -> int:
    """Queue a stopped, failed or diverged run to continue from its newest checkpoint still on disk (under the
    artifact root `runs_dir`); what it logged after that checkpoint is discarded (everything, when it has none).
    Returns the step it resumes from. Only its owner or an admin (`by`) may: NotAllowed otherwise."""
    refuse_unless_allowed(by, notebook.get_run(run_id).owner, f"resume run {run_id}")
    recorded = notebook.checkpoints(run_id)
    if any(not Path(c.path).is_absolute() for c in recorded) and not Path(runs_dir).is_dir():
        # Its checkpoints would all look gone, and resuming would throw away all the run has logged.
        raise Refused(f"run {run_id}: its checkpoints are under the artifact root {Path(runs_dir).resolve()}, which "
                      f"this host ({this_host_id()}) cannot see: is the shared folder mounted here? "
                      "($LAB_ARTIFACT_ROOT)")
    saved = [c for c in recorded if recorded_path_here(c.path, runs_dir).exists()]
    from_step = saved[-1].step if saved else 0
    if from_step and "holdout_images" not in notebook.get_run(run_id).config.get("data", {}):
        # Its stored config predates held-out splits: the same values now train on fewer images and judge on
        # others, so continuing its checkpoint would change the experiment halfway through.
        raise Refused(f"run {run_id} was made before held-out splits (its config has no data.holdout_images): "
                      "continuing it would change its data halfway; clone it to run it again under today's "
                      "evaluation")
    notebook.resume(run_id, from_step)
    return from_step


def delete(notebook: Notebook, run_id: int, runs_dir: Path = RUNS_DIR, *, by: Person = LOCAL_USER) -> None:
    """Delete a run that is not running, with its metrics, images, checkpoints and its folder on disk. Only its
    owner or an admin (`by`) may: NotAllowed otherwise."""
    refuse_unless_allowed(by, notebook.get_run(run_id).owner, f"delete run {run_id}")
    folders = {Path(runs_dir).resolve() / str(run_id)}
    for checkpoint in notebook.checkpoints(run_id):  # ID/checkpoints/step_N.pt; older notebooks: absolute, anywhere
        parents = recorded_path_here(checkpoint.path, runs_dir).resolve().parents
        if len(parents) > 1 and parents[1].name == str(run_id):
            folders.add(parents[1])
    notebook.delete_run(run_id)
    for folder in folders:
        _remove_tree(folder)


def regenerate_draft(notebook: Notebook, note_id: int, *, by: Person = LOCAL_USER) -> int:
    """Write the run's draft `note_id` again from the run's stored results; its note id. Refused for a note the
    notebook did not write, one a person has edited (their words are never overwritten), a sweep's entry, or a
    draft whose run was deleted; only the note's owner or an admin (`by`) may (NotAllowed)."""
    from engine.journal_drafts import write_run_draft  # matplotlib and the composer: only when asked

    draft = notebook.draft_of(note_id)
    if draft is None or draft.run_id is None:
        raise Refused(f"note {note_id} is not a run's draft written by the notebook: there is nothing to regenerate")
    refuse_unless_allowed(by, notebook.get_note(note_id).owner, f"regenerate note {note_id}")
    if draft.edited:
        raise Refused(f"note {note_id} was edited by a person: regenerating would overwrite their words")
    if draft.run_deleted:
        raise Refused(f"run {draft.run_id} was deleted: there is nothing left to write its draft from")
    written = write_run_draft(notebook, draft.run_id)
    return written.note_id if written is not None else note_id


def live_workers(notebook: Notebook) -> list[Worker]:
    return notebook.live_workers(LIVE_WORKER_SECONDS)


def _remove_tree(folder: Path, attempts: int = 5) -> None:
    """A process that just lost the run may still be writing its last file there: try again briefly."""
    for attempt in range(attempts):
        try:
            shutil.rmtree(folder)
            return
        except FileNotFoundError:
            return
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)


# --- starting a worker from the app ---------------------------------------------------------------------------


def ensure_worker(url: str, *, runs_dir: str | Path = "runs", max_parallel: int = 1,
                  stale_after: float = LIVE_WORKER_SECONDS) -> int | None:
    """Start a detached worker unless a live one holds a lease (or one this host started is still coming up);
    returns the new worker's pid, or None."""
    with Notebook(url) as notebook:
        here = this_host_id()
        # A lease outlives its worker by up to `stale_after`; on this host a dead pid says so at once.
        if any(w.host != here or _alive(w.pid) for w in notebook.live_workers(stale_after)):
            return None
    log_dir = Path(runs_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    pid_file = log_dir / "worker.pid"
    try:
        if _alive(int(pid_file.read_text())):
            return None  # started a moment ago and still importing: two Launch clicks start one worker
    except (OSError, ValueError):
        pass
    with open(log_dir / "worker.log", "ab") as log:
        (log_dir / "worker.log-start").write_text(str(log.tell()))  # where this worker's own lines begin
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "engine", "worker", "--runs-dir", str(log_dir),
             "--max-parallel", str(max_parallel)],
            cwd=ENGINE_ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # Absolute, so the worker and its runs see the same data folder as the app that started them.
            env={**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_DATA_DIR": str(data_root())}, start_new_session=True)
    pid_file.write_text(str(process.pid))
    return process.pid


def worker_warming_up(runs_dir: str | Path = RUNS_DIR) -> bool:
    """Whether the worker this host's app started (runs_dir/worker.pid) is alive and its warm launcher is still
    importing torch and the engine: its log has no 'warm launcher' line since it started (a run launched now
    waits for that import)."""
    folder = Path(runs_dir).resolve()
    try:
        pid = int((folder / "worker.pid").read_text())
        with open(folder / "worker.log", "rb") as log:
            log.seek(int((folder / "worker.log-start").read_text()))
            own_lines = log.read().decode("utf-8", errors="replace")
    except (OSError, ValueError):
        return False
    # 'warm launcher ready …', or 'warm launcher: … could not be preloaded' (runs then import it themselves)
    return _alive(pid) and "warm launcher" not in own_lines


def job_in_words(job_id: str) -> str:
    """A Slurm job's state as Slurm says it, in words (`engine.launchers.slurm`)."""
    from engine.launchers.slurm import job_in_words as in_words  # submitit: only for runs that went to Slurm

    return in_words(job_id)


def job_files(folder: Path, job_id: str) -> dict[str, str]:
    """The tail of each of a Slurm job's own output files in `folder`, by name (`engine.launchers.slurm`)."""
    from engine.launchers.slurm import job_files as files  # submitit: only for runs that went to Slurm

    return files(folder, job_id)


def _alive(pid: int) -> bool:
    """Is `pid` a running worker process on this host (not a zombie)?"""
    try:
        return process_is_running(pid) and "worker" in psutil.Process(pid).cmdline()
    except psutil.Error:
        return False


__all__ = ["LOCAL_USER", "NotAllowed", "Person", "Refused", "Submitted", "SubmittedSweep", "code_changed_since",
           "delete", "ensure_worker", "job_files", "job_in_words", "live_workers", "request_stop", "resume", "submit", "submit_sweep"]


def code_changed_since(notebook: Notebook, run_id: int) -> str | None:
    """Why the code here is not what run `run_id` last ran with (its latest attempt's commit and dirty flag), in
    words; None when it is the same clean commit, or when either side has no git state to compare."""
    latest = notebook.latest_snapshots([run_id], "provenance").get(run_id)
    return None if latest is None else code_differs(latest.get("git", {}), git_state())
