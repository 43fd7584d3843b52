"""The notebook: one SQLAlchemy database (a SQLite file by default, PostgreSQL by URL) holding runs, metrics,
images, checkpoints and dated notes. Every public method runs in its own managed session and returns
dataclasses. Metric points are buffered and written in batches by one primitive, `log_batch`."""

from __future__ import annotations

import atexit
import datetime as dt
import os
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, or_, select, text, update
from sqlalchemy.orm import Session

from lab_notes.images import check_image
from lab_notes.records import FINAL_STATUSES, RUN_STATUSES, Checkpoint, Figure, Note, Run, Worker
from lab_notes.schema import (CheckpointRow, FigureRow, ImageRow, MetricRollupRow, MetricRow, NoteRow, NoteRunRow,
                              RunRow, WorkerRow)
from lab_notes.series import BUCKET_STEPS, ROLLUP_COLUMNS, downsample, from_sql, merge, overview, summarise, to_sql

DEFAULT_PATH = "notebook.db"
LOG_TAIL_CHARS = 20_000
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class NotFound(KeyError):
    """No run or note with that id."""

    def __str__(self) -> str:
        return str(self.args[0])


def default_url() -> str:
    return os.environ.get("LAB_NOTEBOOK_URL") or f"sqlite:///{Path(DEFAULT_PATH).resolve()}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every time in the notebook is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    """WAL, synchronous=NORMAL, a busy timeout and foreign keys; writers take the write lock when they begin
    (BEGIN IMMEDIATE), so two writers queue on the busy timeout instead of failing mid-transaction."""
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Notebook:
    """The notebook at `url` (default: $LAB_NOTEBOOK_URL, else ./notebook.db). Upgrades its schema on open."""

    def __init__(self, url: str | None = None, *, flush_interval: float = 0.5, flush_points: int = 1000) -> None:
        self.url = url or default_url()
        if self.url.startswith("sqlite"):
            self._writer = _sqlite_engine(self.url, immediate=True)
            self._reader = _sqlite_engine(self.url, immediate=False)
        else:
            self._writer = self._reader = create_engine(self.url, pool_pre_ping=True)
        self.dialect = self._writer.dialect.name
        self._upgrade_schema()
        self._placeholder = "?" if self._writer.dialect.paramstyle == "qmark" else "%s"
        self._insert_metrics_sql = ("INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES "
                                    f"({', '.join([self._placeholder] * 5)})")
        self._buffer: list[tuple[int, str, int, float | None, float]] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self.flush_points = flush_points
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, args=(flush_interval,), daemon=True,
                                         name="notebook-flusher")
        self._flusher.start()
        # Nothing buffered is lost when the process exits normally.
        self._atexit = weakref.WeakMethod(self.close)
        atexit.register(_close_at_exit, self._atexit)

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _upgrade_schema(self) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._writer.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._reader) as session, session.begin():
            yield session

    def close(self) -> None:
        """Flush what is buffered and release connections; safe to call twice."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._flusher.join(timeout=5)
        self.flush()
        self._writer.dispose()
        self._reader.dispose()

    def __enter__(self) -> "Notebook":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- runs -------------------------------------------------------------------------------------------------

    def create_run(self, config: dict[str, Any], *, name: str, preset: str | None = None,
                   parent_id: int | None = None, lint: Sequence[Any] = ()) -> int:
        with self._write() as session:
            row = RunRow(name=name, preset=preset, config=config, parent_id=parent_id, status="queued",
                         created_at=now(), stop_requested=False, lint=list(lint), log_tail="")
            session.add(row)
            session.flush()
            return row.id

    def get_run(self, run_id: int) -> Run:
        with self._read() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFound(f"no run {run_id}")
            return _run(row)

    def list_runs(self, status: str | Sequence[str] | None = None, search: str | None = None) -> list[Run]:
        """Newest first; `search` matches name or preset, case-insensitively."""
        query = select(RunRow).order_by(RunRow.id.desc())
        if status:
            query = query.where(RunRow.status.in_([status] if isinstance(status, str) else list(status)))
        if search:
            pattern = f"%{search.lower()}%"
            query = query.where(or_(func.lower(RunRow.name).like(pattern),
                                    func.lower(func.coalesce(RunRow.preset, "")).like(pattern)))
        with self._read() as session:
            return [_run(row) for row in session.scalars(query)]

    def set_status(self, run_id: int, status: str, *, reason: str | None = None,
                   exit_code: int | None = None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"status must be one of {RUN_STATUSES}, not {status!r}")
        values: dict[str, Any] = {"status": status, "status_reason": reason}
        if status == "running":
            values.update(started_at=now(), heartbeat_at=now(), ended_at=None, stop_requested=False)
        if status in FINAL_STATUSES:
            values["ended_at"] = now()
        if exit_code is not None:
            values["exit_code"] = exit_code
        self._update_run(run_id, **values)

    def heartbeat(self, run_id: int) -> None:
        self._update_run(run_id, heartbeat_at=now())

    def request_stop(self, run_id: int) -> None:
        self._update_run(run_id, stop_requested=True)

    def stop_requested(self, run_id: int) -> bool:
        with self._read() as session:
            return bool(session.scalar(select(RunRow.stop_requested).where(RunRow.id == run_id)))

    def set_device(self, run_id: int, device: str) -> None:
        self._update_run(run_id, device=device)

    def set_divergence_report(self, run_id: int, report: dict[str, Any] | None) -> None:
        self._update_run(run_id, divergence_report=report)

    def append_log(self, run_id: int, text_: str) -> None:
        """Keep the last LOG_TAIL_CHARS characters of a run's output."""
        with self._write() as session:
            row = _get(session, RunRow, run_id)
            row.log_tail = (row.log_tail + text_)[-LOG_TAIL_CHARS:]

    def delete_run(self, run_id: int) -> None:
        self.flush()
        with self._write() as session:
            session.delete(_get(session, RunRow, run_id))

    def _update_run(self, run_id: int, **values: Any) -> None:
        with self._write() as session:
            if session.execute(update(RunRow).where(RunRow.id == run_id).values(**values)).rowcount == 0:
                raise NotFound(f"no run {run_id}")

    # --- jobs: claiming runs, workers' leases, stale heartbeats ----------------------------------------------

    def claim_next_run(self, worker_id: str) -> Run | None:
        """Atomically take the oldest queued run for `worker_id` (two workers never get the same run)."""
        query = select(RunRow).where(RunRow.status == "queued").order_by(RunRow.id).limit(1)
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE already serialises this
        with self._write() as session:
            row = session.scalars(query).first()
            if row is None:
                return None
            stamp = now()
            row.status, row.status_reason, row.worker_id, row.pid = "running", None, worker_id, None
            row.started_at, row.heartbeat_at, row.ended_at, row.stop_requested = stamp, stamp, None, False
            session.flush()
            return _run(row)

    def set_pid(self, run_id: int, pid: int) -> None:
        self._update_run(run_id, pid=pid)

    def set_exit_code(self, run_id: int, exit_code: int) -> None:
        self._update_run(run_id, exit_code=exit_code)

    def requeue(self, run_id: int) -> None:
        """Queue a stopped or failed run again; it resumes from its last checkpoint."""
        with self._write() as session:
            row = _get(session, RunRow, run_id)
            if row.status not in ("stopped", "failed"):
                raise ValueError(f"run {run_id} is {row.status}: only a stopped or failed run can be resumed")
            row.status, row.status_reason, row.stop_requested, row.exit_code = "queued", None, False, None

    def discard_after(self, run_id: int, step: int) -> None:
        """Drop metrics and images logged after `step` (a resumed run logs those steps again)."""
        self.flush()
        first_bucket = step // BUCKET_STEPS
        with self._writer.begin() as connection:
            connection.execute(delete(MetricRow).where(MetricRow.run_id == run_id, MetricRow.step > step))
            connection.execute(delete(ImageRow).where(ImageRow.run_id == run_id, ImageRow.step > step))
            connection.execute(delete(MetricRollupRow).where(MetricRollupRow.run_id == run_id,
                                                             MetricRollupRow.bucket >= first_bucket))
            kept = connection.execute(select(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.value)
                                      .where(MetricRow.run_id == run_id,
                                             MetricRow.step >= first_bucket * BUCKET_STEPS)).all()
            self._write_rollups(connection, kept)

    def register_worker(self, worker_id: str, *, host: str, pid: int, max_parallel: int) -> None:
        with self._write() as session:
            session.add(WorkerRow(id=worker_id, host=host, pid=pid, max_parallel=max_parallel, started_at=now(),
                                  heartbeat_at=now()))

    def heartbeat_worker(self, worker_id: str, run_ids: Sequence[int] = ()) -> None:
        """The worker's lease and its running runs' heartbeats, in one transaction."""
        stamp = now()
        with self._write() as session:
            session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(heartbeat_at=stamp))
            if run_ids:
                session.execute(update(RunRow).where(RunRow.id.in_(list(run_ids)), RunRow.status == "running")
                                .values(heartbeat_at=stamp))

    def retire_worker(self, worker_id: str) -> None:
        with self._write() as session:
            session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    def live_workers(self, stale_after: float) -> list[Worker]:
        cutoff = now() - dt.timedelta(seconds=stale_after)
        with self._read() as session:
            rows = session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= cutoff).order_by(WorkerRow.id))
            return [Worker(r.id, r.host, r.pid, r.max_parallel, as_utc(r.started_at), as_utc(r.heartbeat_at))
                    for r in rows]

    def fail_stale_runs(self, stale_after: float) -> list[int]:
        """Mark failed every running run whose heartbeat is older than `stale_after` seconds; their ids."""
        stamp = now()
        cutoff = stamp - dt.timedelta(seconds=stale_after)
        with self._write() as session:
            rows = list(session.scalars(select(RunRow).where(RunRow.status == "running",
                                                             RunRow.heartbeat_at < cutoff)))
            for row in rows:
                age = (stamp - as_utc(row.heartbeat_at)).total_seconds()
                row.status, row.ended_at = "failed", stamp
                row.status_reason = (f"heartbeat stale: no sign of life for {age:.0f} s "
                                     f"(threshold {stale_after:g} s; worker {row.worker_id} gone?)")
            session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < cutoff))
            return [row.id for row in rows]

    # --- checkpoints ------------------------------------------------------------------------------------------

    def add_checkpoint(self, run_id: int, step: int, path: str) -> None:
        with self._write() as session:
            session.add(CheckpointRow(run_id=run_id, step=step, path=str(path), created_at=now()))

    def checkpoints(self, run_id: int) -> list[Checkpoint]:
        with self._read() as session:
            rows = session.scalars(select(CheckpointRow).where(CheckpointRow.run_id == run_id)
                                   .order_by(CheckpointRow.step, CheckpointRow.id))
            return [Checkpoint(r.run_id, r.step, r.path, as_utc(r.created_at)) for r in rows]

    # --- metrics ----------------------------------------------------------------------------------------------

    def log_metrics(self, run_id: int, step: int, values: dict[str, float], wall_time: float | None = None) -> None:
        """Buffer one step's values; they reach the database within ~0.5 s, at 1000 points, or on flush/close."""
        stamp = time.time() if wall_time is None else wall_time
        rows = [(run_id, key, step, to_sql(value), stamp) for key, value in values.items()]
        with self._buffer_lock:
            self._buffer.extend(rows)
            full = len(self._buffer) >= self.flush_points
        if full:
            self.flush()

    def log_batch(self, rows: Iterable[tuple[int, str, int, float, float]]) -> None:
        """Write (run_id, key, step, value, wall_time) rows now, in one transaction: the one batch primitive."""
        prepared = [(run_id, key, step, to_sql(value), wall_time) for run_id, key, step, value, wall_time in rows]
        if prepared:
            with self._writer.begin() as connection:
                self._write_points(connection, prepared)

    def flush(self) -> None:
        # One flusher at a time keeps each writer's points in step order in the database.
        with self._flush_lock:
            with self._buffer_lock:
                pending, self._buffer = self._buffer, []
            if not pending:
                return
            try:
                with self._writer.begin() as connection:
                    self._write_points(connection, pending)
            except Exception:
                with self._buffer_lock:  # keep the points for the next flush rather than lose them
                    self._buffer[:0] = pending
                raise

    def _write_points(self, connection: Connection, rows: list[tuple[int, str, int, float | None, float]]) -> None:
        connection.exec_driver_sql(self._insert_metrics_sql, rows)
        self._write_rollups(connection, [row[:4] for row in rows])

    def _write_rollups(self, connection: Connection, points: Sequence[tuple[int, str, int, float | None]]) -> None:
        """Fold new points into their buckets' summaries (read, merge, replace), inside the caller's transaction.
        Plain driver SQL: this runs on every flush, and building statements would cost more than running them."""
        fresh = summarise(points)
        if not fresh:
            return
        mark = self._placeholder
        wanted: dict[tuple[int, str], list[int]] = {}
        for run_id, key, bucket in fresh:
            wanted.setdefault((run_id, key), []).append(bucket)
        existing = {}
        for (run_id, key), buckets in wanted.items():
            where = f"run_id = {mark} AND key = {mark} AND bucket IN ({', '.join([mark] * len(buckets))})"
            found = connection.exec_driver_sql(
                f"SELECT bucket, {', '.join(ROLLUP_COLUMNS)} FROM metric_rollups WHERE {where}",
                (run_id, key, *buckets)).all()
            if found:
                existing.update({(run_id, key, row[0]): dict(zip(ROLLUP_COLUMNS, row[1:])) for row in found})
                connection.exec_driver_sql(f"DELETE FROM metric_rollups WHERE {where}", (run_id, key, *buckets))
        rows = []
        for where, summary in fresh.items():
            if where in existing:
                summary = merge(existing[where], summary)
            rows.append((*where, *(summary[c] for c in ROLLUP_COLUMNS)))
        connection.exec_driver_sql(
            f"INSERT INTO metric_rollups (run_id, key, bucket, {', '.join(ROLLUP_COLUMNS)}) VALUES "
            f"({', '.join([mark] * (3 + len(ROLLUP_COLUMNS)))})", rows)

    def _flush_periodically(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - a failed background flush is retried by the next one or close()
                pass

    def metric_keys(self, run_id: int) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(MetricRollupRow.key).where(MetricRollupRow.run_id == run_id)
                                        .distinct().order_by(MetricRollupRow.key)))

    def latest_metrics(self, run_id: int) -> dict[str, tuple[int, float]]:
        """key -> (step, value) of each key's last point (highest step)."""
        last = (select(MetricRollupRow.key, func.max(MetricRollupRow.bucket).label("bucket"))
                .where(MetricRollupRow.run_id == run_id).group_by(MetricRollupRow.key).subquery())
        query = (select(MetricRollupRow.key, MetricRollupRow.last_step, MetricRollupRow.last_value)
                 .join(last, (MetricRollupRow.key == last.c.key) & (MetricRollupRow.bucket == last.c.bucket))
                 .where(MetricRollupRow.run_id == run_id))
        with self._read() as session:
            rows = session.execute(query).all()
        return {key: (step, float(from_sql([value])[0])) for key, step, value in rows}

    def metric_history(self, run_id: int, key: str, *, since_step: int | None = None,
                       max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) in step order; only steps after `since_step` when given. With `max_points`, a longer
        series is downsampled on the server keeping the global min, max, the last point and non-finite points
        as markers: from the per-bucket rollups (no scan of every point), then MinMaxLTTB if still too many."""
        if max_points is not None and since_step is None:
            with self._read() as session:
                summaries = [{c: getattr(r, c) for c in ROLLUP_COLUMNS} for r in session.scalars(
                    select(MetricRollupRow).where(MetricRollupRow.run_id == run_id, MetricRollupRow.key == key)
                    .order_by(MetricRollupRow.bucket))]
            if sum(b["n"] for b in summaries) > max_points:
                steps, values = overview(summaries)
                return downsample(steps, values, max_points) if len(steps) > max_points else (steps, values)
        query = (select(MetricRow.step, MetricRow.value).where(MetricRow.run_id == run_id, MetricRow.key == key)
                 .order_by(MetricRow.step, MetricRow.id))
        if since_step is not None:
            query = query.where(MetricRow.step > since_step)
        with self._read() as session:
            rows = session.execute(query).all()
        steps = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        values = from_sql([r[1] for r in rows])
        if max_points is not None and len(steps) > max_points:
            return downsample(steps, values, max_points)
        return steps, values

    # --- images -----------------------------------------------------------------------------------------------

    def log_image(self, run_id: int, key: str, step: int, png: bytes) -> None:
        """Store a validated image (a later one at the same step replaces it)."""
        check_image(png, f"image {key!r} at step {step}")
        with self._write() as session:
            session.execute(delete(ImageRow).where(ImageRow.run_id == run_id, ImageRow.key == key,
                                                   ImageRow.step == step))
            session.add(ImageRow(run_id=run_id, key=key, step=step, png=png))

    def image_keys(self, run_id: int) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(ImageRow.key).where(ImageRow.run_id == run_id).distinct()))

    def image_steps(self, run_id: int, key: str) -> list[int]:
        with self._read() as session:
            return list(session.scalars(select(ImageRow.step).where(ImageRow.run_id == run_id, ImageRow.key == key)
                                        .order_by(ImageRow.step)))

    def get_image(self, run_id: int, key: str, step: int) -> bytes:
        with self._read() as session:
            png = session.scalar(select(ImageRow.png).where(ImageRow.run_id == run_id, ImageRow.key == key,
                                                            ImageRow.step == step))
        if png is None:
            raise NotFound(f"no image {key!r} at step {step} of run {run_id}")
        return png

    # --- notes ------------------------------------------------------------------------------------------------

    def add_note(self, entry_date: dt.date | None, title: str, body_markdown: str, *, run_ids: Sequence[int] = (),
                 figures: Sequence[Figure] = (), tags: Sequence[str] = ()) -> int:
        return self.add_notes([(entry_date, title, body_markdown, run_ids, figures, tags)])[0]

    def add_notes(self, notes: Sequence[tuple[dt.date | None, str, str, Sequence[int], Sequence[Figure],
                                              Sequence[str]]]) -> list[int]:
        """Several notes in one transaction: all are written or none."""
        for _, _, _, _, figures, _ in notes:
            _check_figures(figures)
        with self._write() as session:
            ids = []
            for entry_date, title, body, run_ids, figures, tags in notes:
                stamp = now()
                row = NoteRow(entry_date=entry_date, title=title, body=body, tags=list(tags), created_at=stamp,
                              updated_at=stamp)
                session.add(row)
                session.flush()
                _link(session, row.id, run_ids, figures)
                ids.append(row.id)
            return ids

    def update_note(self, note_id: int, *, entry_date: dt.date | None | type[Ellipsis] = ...,
                    title: str | None = None, body_markdown: str | None = None, run_ids: Sequence[int] | None = None,
                    figures: Sequence[Figure] | None = None, tags: Sequence[str] | None = None) -> None:
        """Change what is given; `figures` and `run_ids`, when given, replace the old ones."""
        _check_figures(figures or ())
        with self._write() as session:
            row = _get(session, NoteRow, note_id)
            if entry_date is not ...:
                row.entry_date = entry_date
            if title is not None:
                row.title = title
            if body_markdown is not None:
                row.body = body_markdown
            if tags is not None:
                row.tags = list(tags)
            row.updated_at = now()
            if run_ids is not None:
                session.execute(delete(NoteRunRow).where(NoteRunRow.note_id == note_id))
            if figures is not None:
                session.execute(delete(FigureRow).where(FigureRow.note_id == note_id))
            _link(session, note_id, run_ids or (), figures or ())

    def delete_note(self, note_id: int) -> None:
        with self._write() as session:
            session.delete(_get(session, NoteRow, note_id))

    def get_note(self, note_id: int) -> Note:
        notes = self._notes(select(NoteRow).where(NoteRow.id == note_id))
        if not notes:
            raise NotFound(f"no note {note_id}")
        return notes[0]

    def list_notes(self, run_id: int | None = None, *, newest_first: bool = False) -> list[Note]:
        """By entry date (undated entries last), then by id."""
        query = select(NoteRow)
        if run_id is not None:
            query = query.join(NoteRunRow, NoteRunRow.note_id == NoteRow.id).where(NoteRunRow.run_id == run_id)
        order = NoteRow.entry_date.desc() if newest_first else NoteRow.entry_date.asc()
        query = query.order_by(NoteRow.entry_date.is_(None), order, NoteRow.id)
        return self._notes(query)

    def note_headings(self, *, newest_first: bool = True) -> list[tuple[int, dt.date | None, str, str]]:
        """(id, entry date, title, start of the body) of every note, without loading figures: for pickers."""
        order = NoteRow.entry_date.desc() if newest_first else NoteRow.entry_date.asc()
        with self._read() as session:
            query = select(NoteRow.id, NoteRow.entry_date, NoteRow.title, func.substr(NoteRow.body, 1, 60))
            rows = session.execute(query.order_by(NoteRow.entry_date.is_(None), order, NoteRow.id)).all()
        return [(r[0], r[1], r[2], r[3] or "") for r in rows]

    def search_notes(self, text_: str) -> list[Note]:
        """Notes whose title or body contains `text_` (every word of it), best match first on SQLite."""
        words = [w for w in text_.split() if w]
        if not words:
            return []
        if self.dialect == "sqlite" and all(len(w) >= 3 for w in words):
            # FTS5 trigram index: each word quoted, so user text is never read as FTS syntax.
            match = " AND ".join('"' + w.replace('"', '""') + '"' for w in words)
            with self._read() as session:
                ids = list(session.scalars(text("SELECT rowid FROM notes_fts WHERE notes_fts MATCH :q "
                                                "ORDER BY rank"), {"q": match}))
            found = {n.id: n for n in self._notes(select(NoteRow).where(NoteRow.id.in_(ids)))}
            return [found[i] for i in ids if i in found]
        conditions = [or_(NoteRow.title.ilike(f"%{w}%"), NoteRow.body.ilike(f"%{w}%")) for w in words]
        return self._notes(select(NoteRow).where(*conditions).order_by(NoteRow.entry_date, NoteRow.id))

    def _notes(self, query: Any) -> list[Note]:
        with self._read() as session:
            rows = list(session.scalars(query).unique())
            if not rows:
                return []
            ids = [r.id for r in rows]
            links: dict[int, list[int]] = {}
            for note_id, run_id in session.execute(select(NoteRunRow.note_id, NoteRunRow.run_id)
                                                   .where(NoteRunRow.note_id.in_(ids)).order_by(NoteRunRow.run_id)):
                links.setdefault(note_id, []).append(run_id)
            figures: dict[int, list[Figure]] = {}
            for f in session.scalars(select(FigureRow).where(FigureRow.note_id.in_(ids))
                                     .order_by(FigureRow.note_id, FigureRow.position)):
                figures.setdefault(f.note_id, []).append(Figure(f.name, f.image, f.caption, f.chart_spec, f.missing))
            return [Note(r.id, r.entry_date, r.title, r.body, list(r.tags or []), links.get(r.id, []),
                         figures.get(r.id, []), as_utc(r.created_at), as_utc(r.updated_at)) for r in rows]

    # --- the journal file ---------------------------------------------------------------------------------------

    def import_journal(self, md_path: str | Path, pic_dir: str | Path | None = None) -> list[int]:
        """Import a Markdown journal (`### YYYY.MM.DD` entries) in one transaction; returns the new note ids."""
        from lab_notes.journal import parse_journal

        entries = parse_journal(Path(md_path), Path(pic_dir) if pic_dir else None)
        return self.add_notes([(e.entry_date, "", e.body, (), e.figures, ()) for e in entries])

    def export_journal(self, out_dir: str | Path) -> Path:
        """Write `journal.md` and `pic/` into `out_dir`; returns the path of journal.md."""
        from lab_notes.journal import write_journal

        return write_journal(self.list_notes(), Path(out_dir))


# --- helpers --------------------------------------------------------------------------------------------------


def _close_at_exit(method: weakref.WeakMethod) -> None:
    bound = method()
    if bound is not None:
        bound()


def _get(session: Session, model: type, ident: int) -> Any:
    row = session.get(model, ident)
    if row is None:
        raise NotFound(f"no {model.__tablename__[:-1]} {ident}")
    return row


def _check_figures(figures: Sequence[Figure]) -> None:
    """Validate every figure before anything is written, so a bad one leaves the notebook unchanged."""
    for figure in figures:
        if figure.image is not None:
            check_image(figure.image, f"figure {figure.name!r}")


def _link(session: Session, note_id: int, run_ids: Sequence[int], figures: Sequence[Figure]) -> None:
    for run_id in dict.fromkeys(run_ids):
        session.add(NoteRunRow(note_id=note_id, run_id=run_id))
    for position, f in enumerate(figures):
        session.add(FigureRow(note_id=note_id, position=position, name=f.name, caption=f.caption, image=f.image,
                              missing=f.missing if f.image is None else None, chart_spec=f.chart_spec))


def _run(row: RunRow) -> Run:
    return Run(row.id, row.name, row.preset, row.config, row.parent_id, row.status, row.status_reason,
               as_utc(row.created_at), as_utc(row.started_at), as_utc(row.ended_at), as_utc(row.heartbeat_at),
               bool(row.stop_requested), row.device, row.exit_code, list(row.lint or []), row.divergence_report,
               row.log_tail or "", row.worker_id, row.pid)
