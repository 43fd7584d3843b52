"""TensorBoard logs into the notebook: `TensorBoardFeed` follows a live script run's logdir under its attempt
(fenced writes, so a process that lost the run writes nothing more); `import_logdir` makes one finished run per
run folder of existing logs, once. No torch here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from engine.tensorboard_tail import EVENT_FILE_GLOB, Batch, LogdirTail
from lab_notes import Attempt, BadImage, Notebook
from lab_notes.imported_runs import start_imported_run

SNAPSHOT_TEXT = "text"  # add_text: one document per (tag, step), shown on the Run page as plain text
SNAPSHOT_HPARAMS = "hparams"  # add_hparams: the hyperparameters, once
IMPORT_PRESET = "tensorboard"
IMPORT_HEARTBEAT_SECONDS = 2.0


def write_batch(notebook: Notebook, attempt: Attempt, batch: Batch, report: Callable[[str], None] = print) -> None:
    """Store what a poll read, under `attempt` (scalars buffered; images, texts and hparams at once)."""
    for key, step, value, wall_time in batch.scalars:
        notebook.log_metrics(attempt.run_id, step, {key: value}, wall_time, attempt=attempt)
    for key, step, png in batch.images:
        try:
            notebook.log_image(attempt.run_id, key, step, png, attempt=attempt)
        except BadImage as error:  # one unreadable image is skipped, said, and the rest goes on
            report(f"TensorBoard: {error}; skipped")
    for key, step, text in batch.texts:
        notebook.log_snapshot(attempt.run_id, SNAPSHOT_TEXT, step, {"tag": key, "text": text}, key=key, attempt=attempt)
    if batch.hparams:
        notebook.log_snapshot(attempt.run_id, SNAPSHOT_HPARAMS, 0, batch.hparams, attempt=attempt)


class TensorBoardFeed:
    """A live run's logdir, read at each `poll` into the notebook."""

    def __init__(self, notebook: Notebook, attempt: Attempt, logdir: Path) -> None:
        self.notebook, self.attempt = notebook, attempt
        self.tail = LogdirTail(logdir)
        self.last_step = 0  # the newest step seen: system metrics are stored at it

    def poll(self) -> int:
        """Read and store what is new; how many points and items that was."""
        batch = self.tail.poll()
        if batch:
            write_batch(self.notebook, self.attempt, batch)
            self.last_step = max([self.last_step, *(s for _, s, _, _ in batch.scalars)])
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
    """Source folder -> run id of every run an earlier import made (and that is not deleted)."""
    return {run.config["source"]: run.id for run in notebook.list_runs()
            if run.preset == IMPORT_PRESET and isinstance(run.config.get("source"), str) and run.status != "deleted"}


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
        _write_in_chunks(notebook, attempt, batch)
        problems = tail.unreadable()
        result.unreadable.extend(problems)
        reason = ("imported from TensorBoard logs; unreadable: " + "; ".join(problems)) if problems else None
        notebook.finish_attempt(attempt, "completed", reason=reason)
        result.made.append((attempt.run_id, folder))
    return result


def _write_in_chunks(notebook: Notebook, attempt: Attempt, batch: Batch) -> None:
    """Write a (maybe large) batch, heartbeating between chunks: a worker's reaper sees a live attempt."""
    chunk, last = 5000, time.monotonic()
    for start in range(0, max(len(batch.scalars), 1), chunk):
        write_batch(notebook, attempt, Batch(scalars=batch.scalars[start:start + chunk]))
        if time.monotonic() - last > IMPORT_HEARTBEAT_SECONDS:
            notebook.heartbeat(attempt)
            last = time.monotonic()
    write_batch(notebook, attempt, Batch(images=batch.images, texts=batch.texts, hparams=batch.hparams))
