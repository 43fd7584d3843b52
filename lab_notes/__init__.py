"""The notebook: runs, metrics, images, checkpoints and dated notes in one SQL database, and the journal file
in and out. Imports nothing of ours but plain config dicts; never torch. This is the package's public face:
the app imports only names from here."""

from typing import Any, Mapping

from lab_notes.artifacts import artifact_root
from lab_notes.backup import BackupError, backup_into, backups_to_keep
from lab_notes.db import Unreachable, apply_umask, default_url
from lab_notes.drafts import DRAFT_TAG, EndedRun, JournalDraft, run_ending_key, sweep_ending_key
from lab_notes.images import MAX_IMAGE_BYTES, BadImage, check_image
from lab_notes.journal import JournalError
from lab_notes.journal_render import PREVIEW_CHARS, body_segments
from lab_notes.keys import (EVAL_ACC_DISCRIMINATOR, EVAL_ACC_PROTOTYPE, IMAGES_PER_S, LOSS_TOTAL, SNAPSHOT_FEW_SHOT,
                            SNAPSHOT_PROVENANCE)
from lab_notes.owners import LOCAL_USER, NotAllowed, Person, is_admin, may_change
from lab_notes.records import (FINAL_STATUSES, RESUMABLE_STATUSES, RUN_STATUSES, Attempt, Checkpoint, Figure, Note,
                               NoteDraft, NoteHeading, Run, Snapshot, Sweep, Worker)
from lab_notes.runs import LeaseLost, Refused
from lab_notes.series import downsample
from lab_notes.notebook_sink import NotebookSink
from lab_notes.overview import Sort
from lab_notes.store import Notebook, NotFound
from lab_notes.client import start_run
from lab_notes.client_run import RunEnded, TrackedRun
from lab_notes.client_values import BadValue



def curves_png(series: Mapping[str, tuple[Any, Any]], *, title: str, ylabel: str = "value", smoothing: float = 0.0,
               size: tuple[float, float] = (7.2, 3.6)) -> bytes:
    """Curves as a PNG drawn by matplotlib (lab_notes.plots), imported only when a chart is drawn."""
    from lab_notes.plots import curves_png as draw

    return draw(series, title=title, ylabel=ylabel, smoothing=smoothing, size=size)


__all__ = [
    "EVAL_ACC_DISCRIMINATOR", "EVAL_ACC_PROTOTYPE", "IMAGES_PER_S", "LOSS_TOTAL", "SNAPSHOT_FEW_SHOT",
    "SNAPSHOT_PROVENANCE",
    "Attempt", "BackupError", "BadImage", "BadValue", "Checkpoint", "DRAFT_TAG", "EndedRun", "FINAL_STATUSES",
    "Figure", "JournalDraft", "JournalError", "LOCAL_USER", "LeaseLost", "MAX_IMAGE_BYTES", "Note", "NoteDraft",
    "NoteHeading", "NotAllowed", "NotFound", "Notebook", "NotebookSink", "PREVIEW_CHARS", "Person",
    "RESUMABLE_STATUSES", "RUN_STATUSES", "Refused", "Run", "RunEnded", "Snapshot", "Sort", "Sweep", "TrackedRun",
    "Unreachable", "Worker", "apply_umask", "artifact_root", "backup_into", "backups_to_keep", "body_segments",
    "check_image", "curves_png", "default_url", "downsample", "is_admin", "may_change", "run_ending_key",
    "start_run", "sweep_ending_key",
]
