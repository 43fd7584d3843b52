"""The notebook: runs, metrics, images, checkpoints and dated notes in one SQL database, and the journal file
in and out. Imports nothing of ours but plain config dicts; never torch. This is the package's public face:
the app imports only names from here."""

from lab_notes.artifacts import artifact_root
from lab_notes.backup import BackupError, backup_into, backups_to_keep
from lab_notes.db import apply_umask, default_url
from lab_notes.images import MAX_IMAGE_BYTES, BadImage, check_image
from lab_notes.journal import JournalError
from lab_notes.journal_render import PREVIEW_CHARS, body_segments
from lab_notes.keys import (EVAL_ACC_DISCRIMINATOR, EVAL_ACC_PROTOTYPE, LOSS_TOTAL, SNAPSHOT_FEW_SHOT,
                            SNAPSHOT_PROVENANCE)
from lab_notes.owners import LOCAL_USER, NotAllowed, Person, is_admin, may_change
from lab_notes.records import (FINAL_STATUSES, RESUMABLE_STATUSES, RUN_STATUSES, Attempt, Checkpoint, Figure, Note,
                               NoteDraft, NoteHeading, Run, Snapshot, Sweep, Worker)
from lab_notes.runs import LeaseLost, Refused
from lab_notes.series import downsample
from lab_notes.notebook_sink import NotebookSink
from lab_notes.store import Notebook, NotFound
from lab_notes.client import start_run
from lab_notes.client_run import RunEnded, TrackedRun
from lab_notes.client_values import BadValue

__all__ = [
    "EVAL_ACC_DISCRIMINATOR", "EVAL_ACC_PROTOTYPE", "LOSS_TOTAL", "SNAPSHOT_FEW_SHOT", "SNAPSHOT_PROVENANCE",
    "Attempt", "BackupError", "BadImage", "BadValue", "Checkpoint", "FINAL_STATUSES", "Figure", "JournalError",
    "LOCAL_USER", "LeaseLost", "MAX_IMAGE_BYTES", "Note", "NoteDraft", "NoteHeading", "NotAllowed", "NotFound",
    "Notebook", "NotebookSink", "PREVIEW_CHARS", "Person", "RESUMABLE_STATUSES", "RUN_STATUSES", "Refused",
    "Run", "RunEnded", "Snapshot", "Sweep", "TrackedRun", "Worker", "apply_umask", "artifact_root",
    "backup_into", "backups_to_keep", "body_segments", "check_image", "default_url", "downsample", "is_admin",
    "may_change", "start_run",
]
