"""What the notebook returns: plain frozen dataclasses, never ORM rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("queued", "running", "completed", "stopped", "diverged", "failed")
FINAL_STATUSES = ("completed", "stopped", "diverged", "failed")


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


@dataclass(frozen=True)
class Worker:
    id: str
    host: str
    pid: int
    max_parallel: int
    started_at: dt.datetime
    heartbeat_at: dt.datetime


@dataclass(frozen=True)
class Figure:
    """A figure of a note: image bytes (PNG or another format Pillow reads), or None with `missing` saying why."""

    name: str
    image: bytes | None = None
    caption: str = ""
    chart_spec: dict[str, Any] | None = None
    missing: str | None = None


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


@dataclass(frozen=True)
class Checkpoint:
    run_id: int
    step: int
    path: str
    created_at: dt.datetime
