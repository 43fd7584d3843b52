"""The notebook: runs, metrics, images, checkpoints and dated notes in one SQL database, and the journal file
in and out. Imports nothing of ours but plain config dicts; never torch."""

from lab_notes.images import BadImage
from lab_notes.journal import JournalError
from lab_notes.records import (FINAL_STATUSES, RESUMABLE_STATUSES, RUN_STATUSES, Attempt, Checkpoint, Figure, Note,
                               NoteDraft, NoteHeading, Run, Snapshot, Sweep, Worker)
from lab_notes.runs import LeaseLost, Refused
from lab_notes.sink import NotebookSink
from lab_notes.store import Notebook, NotFound

__all__ = [
    "Attempt", "BadImage", "Checkpoint", "FINAL_STATUSES", "Figure", "JournalError", "LeaseLost", "Note",
    "NoteDraft", "NoteHeading", "NotFound", "Notebook", "NotebookSink", "RESUMABLE_STATUSES", "RUN_STATUSES",
    "Refused", "Run", "Snapshot", "Sweep", "Worker",
]
