"""The notebook: runs, metrics, images, checkpoints and dated notes in one SQL database, and the journal file
in and out. Imports nothing of ours but plain config dicts; never torch."""

from lab_notes.images import BadImage
from lab_notes.journal import JournalError
from lab_notes.records import FINAL_STATUSES, RUN_STATUSES, Checkpoint, Figure, Note, Run
from lab_notes.sink import NotebookSink
from lab_notes.store import Notebook, NotFound

__all__ = [
    "BadImage", "Checkpoint", "FINAL_STATUSES", "Figure", "JournalError", "Note", "NotFound", "Notebook",
    "NotebookSink", "RUN_STATUSES", "Run",
]
