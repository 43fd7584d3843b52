"""The notebook's tables (SQLAlchemy 2 typed ORM). Migrations in `lab_notes/migrations` create exactly these."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_sweep_trial", "sweep_id", "trial", unique=True),)  # one run per trial

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    device: Mapped[str | None] = mapped_column(String(100))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    lint: Mapped[list[Any]] = mapped_column(JSON, default=list)
    divergence_report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    worker_id: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # starts so far; the live one's number
    attempt_token: Mapped[str | None] = mapped_column(String(64))  # the live attempt's fencing token
    sweep_id: Mapped[int | None] = mapped_column(Integer, index=True)  # queued as one of a sweep's siblings
    owner: Mapped[str | None] = mapped_column(String(320), index=True)  # who launched it (None: the local user)
    pinned_host: Mapped[str | None] = mapped_column(String(200))  # only a worker on this host may take it
    pinned_gpu: Mapped[str | None] = mapped_column(String(200))  # only a worker offering this GPU kind may take it
    trial: Mapped[int | None] = mapped_column(Integer)  # a search's trial number this run evaluates


class SweepRow(Base):
    """Sibling runs over a grid (every combination) or a list (values taken together) of up to three fields."""

    __tablename__ = "sweeps"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    preset: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(10))  # grid | list | search
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)  # path -> values (a search: path -> its range, as typed)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    search: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a search's objective, budget, sampler, pruner …


class StudyLogRow(Base):
    """One entry of a search's Optuna journal (lab_notes.study_log): the study lives with the notebook."""

    __tablename__ = "study_log"
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)


class WorkerRow(Base):
    """A worker's lease: alive while its heartbeat is fresh."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    max_parallel: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[list[Any] | None] = mapped_column(JSON)  # the GPU names it offers (e.g. "NVIDIA H100 80GB HBM3")
    cpu_slots: Mapped[int | None] = mapped_column(Integer)  # CPU cores it gives its runs
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class MetricRow(Base):
    """One point. NaN is stored as NULL (SQLite cannot hold NaN) and read back as NaN; ±inf are stored as is."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    value: Mapped[float | None] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)
    attempt: Mapped[int | None] = mapped_column(Integer)  # which attempt of the run wrote it (None: not a run)


class MetricRollupRow(Base):
    """A summary of one series over BUCKET_STEPS steps (lab_notes.series), written with the points, so a long
    series is charted from ~2 points per bucket instead of every point. Values as in `metrics` (NULL = NaN)."""

    __tablename__ = "metric_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    min_step: Mapped[int | None] = mapped_column(Integer)
    min_value: Mapped[float | None] = mapped_column(Float)
    max_step: Mapped[int | None] = mapped_column(Integer)
    max_value: Mapped[float | None] = mapped_column(Float)
    last_step: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[float | None] = mapped_column(Float)
    nan_step: Mapped[int | None] = mapped_column(Integer)
    posinf_step: Mapped[int | None] = mapped_column(Integer)
    neginf_step: Mapped[int | None] = mapped_column(Integer)


class ImageRow(Base):
    __tablename__ = "images"
    __table_args__ = (Index("ix_images_run_key_step", "run_id", "key", "step", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = mapped_column(LargeBinary)


class SnapshotRow(Base):
    """A JSON document a run records at a step, by kind: "features" (a held-out feature map), "few_shot" (the
    end-of-run report, eval.json), "histograms" (weights and gradients), "provenance" (key: the attempt)."""

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_run_kind", "run_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    step: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(200), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class NoteRow(Base):
    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_date: Mapped[dt.date | None] = mapped_column(Date, index=True)  # None: an undated entry
    title: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    owner: Mapped[str | None] = mapped_column(String(320))  # who wrote it (None: the local user)


class NoteRunRow(Base):
    __tablename__ = "note_runs"

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)


class FigureRow(Base):
    """A note's figure: image bytes, or none when the file was missing (`missing` says why)."""

    __tablename__ = "figures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(500))
    caption: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    missing: Mapped[str | None] = mapped_column(Text)
    chart_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(320))  # who added it (a pin); None: the local user


class DraftRow(Base):
    """A note the notebook wrote itself when a run (or a sweep) ended: which run, and a fingerprint of the text as
    generated, so a person's edit is seen and never overwritten. `run_id` has no foreign key on purpose: the entry
    outlives its run."""

    __tablename__ = "drafts"

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    sweep_id: Mapped[int | None] = mapped_column(Integer, index=True)
    generated_sha: Mapped[str] = mapped_column(String(64))  # sha256 of title + body as last generated
    language: Mapped[str] = mapped_column(String(10))


class DraftEndingRow(Base):
    """One ending of a run (its attempt) or of a sweep that has been written up: kept when the draft is discarded,
    so a discarded draft is not written again, and what a catch-up pass reads to find endings without a draft."""

    __tablename__ = "draft_endings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)  # "run:<id>:<attempt>" | "sweep:<id>:<n>"
    run_id: Mapped[int | None] = mapped_column(Integer, index=True)
    sweep_id: Mapped[int | None] = mapped_column(Integer, index=True)
    written_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
