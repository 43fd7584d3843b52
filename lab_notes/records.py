"""What the notebook returns: plain frozen dataclasses, never ORM rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("queued", "running", "completed", "stopped", "diverged", "failed", "deleted")
FINAL_STATUSES = ("completed", "stopped", "diverged", "failed")
RESUMABLE_STATUSES = ("stopped", "failed", "diverged")


@dataclass(frozen=True)
class Run:
    id: int
    name: str
    preset: str | None
    config: dict[str, Any]
    parent_id: int | None
    status: str
    status_reason: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    stop_requested: bool
    device: str | None
    exit_code: int | None
    lint: list[Any]
    divergence_report: dict[str, Any] | None
    log_tail: str
    worker_id: str | None = None
    pid: int | None = None
    attempt: int = 0  # how many times a worker has started it; the live chart drops points of older attempts
    sweep_id: int | None = None
    owner: str | None = None  # who launched it; None: the local user (single-user mode, or made before sign-in)
    pinned_host: str | None = None  # only a worker on this host may take it
    pinned_gpu: str | None = None  # only a worker offering this GPU kind may take it

    @property
    def placement_in_words(self) -> str:
        """Where it may run, when pinned ("" when any worker may take it): why a queued run can wait while
        workers sit idle."""
        wanted = ([f"host {self.pinned_host}"] if self.pinned_host else []) + (
            [f"GPU kind {self.pinned_gpu}"] if self.pinned_gpu else [])
        return f"only on {' with '.join(wanted)}" if wanted else ""


@dataclass(frozen=True)
class Attempt:
    """One start of a run by a worker. Every write of the run's process carries it; once the run has moved on
    (reaped, stopped, resumed, deleted), writes with an old token are refused."""

    run_id: int
    number: int
    token: str


@dataclass(frozen=True)
class Worker:
    id: str
    host: str
    pid: int
    max_parallel: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    gpus: tuple[str, ...] = ()  # the GPU names it offers
    cpu_slots: int | None = None  # CPU cores it gives its runs


@dataclass(frozen=True)
class Figure:
    """A figure of a note: image bytes (PNG or another format Pillow reads), or None with `missing` saying why."""

    name: str
    image: bytes | None = None
    caption: str = ""
    chart_spec: dict[str, Any] | None = None
    missing: str | None = None
    owner: str | None = None  # who added it (a pin); None: the local user


@dataclass(frozen=True)
class Note:
    id: int
    entry_date: dt.date | None  # None: an undated entry
    title: str
    body: str
    tags: list[str]
    run_ids: list[int]
    figures: list[Figure] = field(default_factory=list)
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    owner: str | None = None  # who wrote it; None: the local user


@dataclass(frozen=True)
class Checkpoint:
    run_id: int
    step: int
    path: str
    created_at: dt.datetime


@dataclass(frozen=True)
class NoteDraft:
    """A note to be written: what `add_notes` takes, several at once."""

    entry_date: dt.date | None
    title: str
    body: str
    run_ids: tuple[int, ...] = ()
    figures: tuple[Figure, ...] = ()
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteHeading:
    """A note without its figures, for pickers: id, date, title and the start of its body."""

    id: int
    entry_date: dt.date | None
    title: str
    start: str
    owner: str | None = None  # who wrote it; None: the local user


@dataclass(frozen=True)
class Snapshot:
    """A JSON document a run recorded at a step (see `lab_notes.snapshots`); `key` tells apart several of one kind
    at one step (a provenance's attempt number)."""

    step: int
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """Sibling runs over `fields` (path -> values): every combination ("grid") or the values taken together
    ("list"); `run_ids` in the order they were queued."""

    id: int
    name: str
    preset: str | None
    mode: str
    fields: dict[str, list[Any]]
    created_at: dt.datetime
    run_ids: list[int]
