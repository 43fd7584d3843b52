"""The notebook: one SQLAlchemy database (a SQLite file by default, PostgreSQL by URL) holding runs, metrics,
images, checkpoints and dated notes. Every public method runs in its own managed session and returns
dataclasses. The rooms live apart, by concern: `runs` (and the lifecycle, the only place a status changes),
`metrics`, `artifacts` (images and checkpoints), `snapshots` (JSON documents by step: feature maps, few-shot reports, histograms, provenance), `frames` (pandas), `notes` (and the journal file); `Notebook` is all of them."""

from __future__ import annotations

import atexit
import weakref

from lab_notes.artifacts import ArtifactsStore
from lab_notes.drafts import DraftsStore
from lab_notes.db import DEFAULT_PATH, MIGRATIONS, NotFound, default_url
from lab_notes.frames import FramesStore
from lab_notes.metrics import MetricsStore
from lab_notes.notes import NotesStore
from lab_notes.overview import OverviewStore
from lab_notes.runs import LOG_TAIL_CHARS, LeaseLost, Refused, RunsStore
from lab_notes.snapshots import SnapshotsStore
from lab_notes.study_log import StudyLogStore
from lab_notes.sweeps import SweepsStore

__all__ = ["DEFAULT_PATH", "LOG_TAIL_CHARS", "LeaseLost", "MIGRATIONS", "NotFound", "Notebook", "Refused",
           "default_url"]


class Notebook(RunsStore, MetricsStore, ArtifactsStore, SnapshotsStore, FramesStore, OverviewStore, SweepsStore,
               DraftsStore, StudyLogStore, NotesStore):
    """The notebook at `url` (default: $LAB_NOTEBOOK_URL, else ./notebook.db). Upgrades its schema on open."""

    def __init__(self, url: str | None = None, *, flush_interval: float = 0.5, flush_points: int = 1000) -> None:
        super().__init__(url)
        self._start_metrics(flush_interval, flush_points)
        # Nothing buffered is lost when the process exits normally.
        self._atexit = weakref.WeakMethod(self.close)
        atexit.register(_close_at_exit, self._atexit)

    def close(self) -> None:
        """Flush what is buffered and release connections; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join(timeout=5)
        try:
            self.flush()
        finally:
            self.dispose()

    def __enter__(self) -> "Notebook":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _close_at_exit(method: weakref.WeakMethod) -> None:
    bound = method()
    if bound is not None:
        bound()
