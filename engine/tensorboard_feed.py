"""TensorBoard logs into the notebook: `TensorBoardFeed` follows a live script run's logdir under its attempt
(fenced writes, so a process that lost the run writes nothing more); `import_logdir` makes one finished run per
run folder of existing logs, once. No torch here."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.tensorboard_tail import EVENT_FILE_GLOB, Batch, LogdirTail
from lab_notes import Attempt, BadImage, Notebook
from lab_notes.client_values import MAX_KEY_CHARS, STORED_STEPS, BadValue, checked_key
from lab_notes.imported_runs import start_imported_run

SNAPSHOT_TEXT = "text"  # add_text: one document per (tag, step), shown on the Run page as plain text
SNAPSHOT_HPARAMS = "hparams"  # add_hparams: the hyperparameters, once
IMPORT_PRESET = "tensorboard"
IMPORT_HEARTBEAT_SECONDS = 2.0
IMPORT_STALE_SECONDS = 15.0  # an import's run not heartbeat for this long is dead (a worker's reaper's measure)


def write_batch(notebook: Notebook, attempt: Attempt, batch: Batch, report: Callable[[str], None] = print) -> None:
    """Store what a poll read, under `attempt` (scalars buffered; images, texts and hparams at once). What sits at
    a step the notebook cannot store is skipped and said: written, it would fail every point buffered with it."""
    scalars = [scalar for scalar in batch.scalars if storable(scalar[0], scalar[1])]
    images = [image for image in batch.images if storable(image[0], image[1])]
    texts = [text for text in batch.texts if storable(text[0], text[1])]
    outside = len(batch.scalars) + len(batch.images) + len(batch.texts) - len(scalars) - len(images) - len(texts)
    if outside:
        report(f"TensorBoard: {outside:,} points, images or texts skipped: at steps outside {STORED_STEPS[0]:,}.."
               f"{STORED_STEPS[-1]:,} (the notebook stores steps as 32-bit integers), or under tags the notebook "
               f"cannot store as keys (over {MAX_KEY_CHARS} characters, or holding NUL)")
    for key, step, value, wall_time in scalars:
        notebook.log_metrics(attempt.run_id, step, {key: value}, wall_time, attempt=attempt)
    for key, step, png in images:
        try:
            notebook.log_image(attempt.run_id, key, step, png, attempt=attempt)
        except BadImage as error:  # one unreadable image is skipped, said, and the rest goes on
            report(f"TensorBoard: {error}; skipped")
    for key, step, text in texts:
        notebook.log_snapshot(attempt.run_id, SNAPSHOT_TEXT, step, {"tag": key, "text": text}, key=key, attempt=attempt)
    if batch.hparams:
        notebook.log_snapshot(attempt.run_id, SNAPSHOT_HPARAMS, 0, batch.hparams, attempt=attempt)


def storable(key: str, step: int) -> bool:
    """Whether a TensorBoard tag (as a key) and step fit the notebook's columns (checked as the client checks)."""
    if step not in STORED_STEPS:
        return False
    try:
        checked_key(key)
        return True
    except BadValue:
        return False


class TensorBoardFeed:
    """A live run's logdir, read at each `poll` into the notebook."""

    def __init__(self, notebook: Notebook, attempt: Attempt, logdir: Path, report: Callable[[str], None] = print
                 ) -> None:
        """Made before the script starts: event files already in `logdir` are an earlier run's, never read."""
        self.notebook, self.attempt = notebook, attempt
        self.tail = LogdirTail(logdir, new_files_only=True)
        self.last_step = 0  # the newest step seen: system metrics are stored at it
        if self.tail.passed_over:
            report(f"TensorBoard: {len(self.tail.passed_over)} event file(s) already in {logdir} are from before "
                   f"this run and are not read")

    def poll(self) -> int:
        """Read and store what is new; how many points and items that was."""
        batch = self.tail.poll()
        if batch:
            write_batch(self.notebook, self.attempt, batch)
            self.last_step = max([self.last_step, *(s for _, s, _, _ in batch.scalars if s in STORED_STEPS)])
        return len(batch.scalars) + len(batch.images) + len(batch.texts)


def run_folders(logdir: Path) -> list[Path]:
    """The run folders under `logdir`: folders holding event files whose parents (up to `logdir`) hold none; the
    sub-folders of a run folder (add_scalars, add_hparams) are part of it."""
    holders = sorted({path.parent for path in Path(logdir).rglob(EVENT_FILE_GLOB) if path.is_file()})
    return [folder for folder in holders if not any(other in folder.parents for other in holders)]


@dataclass
class Imported:
    """What an import did: the runs it made (id, folder), the folders already imported, what it could not read."""

    made: list[tuple[int, Path]] = field(default_factory=list)
    skipped: list[tuple[int, Path]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def already_imported(notebook: Notebook) -> dict[str, int]:
    """Source folder -> run id of every run an earlier import made and finished, or that an import is making now
    (it heartbeats). One that was interrupted, failed, or died (its heartbeat stale: failed here first, as a
    worker's reaper would) is imported again."""
    notebook.fail_stale_attempts(IMPORT_STALE_SECONDS)
    return {run.config["source"]: run.id for run in notebook.list_runs()
            if run.preset == IMPORT_PRESET and isinstance(run.config.get("source"), str)
            and run.status in ("completed", "running")}


def import_logdir(notebook: Notebook, logdir: Path, *, prefix: str = "", owner: str | None = None) -> Imported:
    """One completed run per run folder of `logdir`: scalars as metrics, images, texts, hparams as its config;
    a folder imported before is skipped, so importing twice adds nothing twice."""
    logdir = Path(logdir).resolve()
    if not logdir.is_dir():
        raise FileNotFoundError(f"LOGDIR: {logdir} is not a folder")
    done, result = already_imported(notebook), Imported()
    for folder in run_folders(logdir):
        if str(folder) in done:
            result.skipped.append((done[str(folder)], folder))
            continue
        relative = folder.relative_to(logdir).as_posix()
        name = f"{prefix}{logdir.name if relative == '.' else relative}"
        tail = LogdirTail(folder)
        batch = tail.poll()  # read first: hparams become the config the run is made with
        config: dict[str, Any] = {"kind": IMPORT_PRESET, "source": str(folder), "hparams": batch.hparams}
        attempt = start_imported_run(notebook, config, name=name, preset=IMPORT_PRESET, owner=owner)
        try:
            _write_in_chunks(notebook, attempt, batch)
            problems = tail.unreadable()
            reason = ("imported from TensorBoard logs; unreadable: " + "; ".join(problems)) if problems else None
            notebook.finish_attempt(attempt, "completed", reason=reason)  # writes the last buffered points too
        except BaseException as error:  # Ctrl-C included: the run must not stay "running", nor count as imported
            _end_unfinished(notebook, attempt, error)
            raise
        result.unreadable.extend(problems)
        result.made.append((attempt.run_id, folder))
    return result


def _end_unfinished(notebook: Notebook, attempt: Attempt, error: BaseException) -> None:
    """End an import that did not finish: stopped (Ctrl-C) or failed, saying why; the next import redoes it."""
    with notebook.buffer.flush_lock:  # not put back by the notebook's own flusher after this
        notebook.buffer.take()  # its unwritten points (maybe what failed): the run is marked incomplete anyway
    status = "stopped" if isinstance(error, KeyboardInterrupt) else "failed"
    reason = f"the import did not finish ({type(error).__name__}: {str(error)[:200]}); importing again redoes it"
    try:
        notebook.finish_attempt(attempt, status, reason=reason)
    except Exception as finishing:  # noqa: BLE001 - the first error is the one to raise; this one is said
        print(f"run {attempt.run_id}: could not be marked {status} ({type(finishing).__name__})", file=sys.stderr)


def _write_in_chunks(notebook: Notebook, attempt: Attempt, batch: Batch) -> None:
    """Write a (maybe large) batch, heartbeating between chunks: a worker's reaper sees a live attempt."""
    chunk, last = 5000, time.monotonic()
    for start in range(0, max(len(batch.scalars), 1), chunk):
        write_batch(notebook, attempt, Batch(scalars=batch.scalars[start:start + chunk]))
        if time.monotonic() - last > IMPORT_HEARTBEAT_SECONDS:
            notebook.heartbeat(attempt)
            last = time.monotonic()
    write_batch(notebook, attempt, Batch(images=batch.images, texts=batch.texts, hparams=batch.hparams))
