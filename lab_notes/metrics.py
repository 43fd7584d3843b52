"""Metric points: buffered (a `MetricBuffer`) and written in batches, each batch with the rollups of its buckets;
read incrementally (since a step) or downsampled on the server. A run process's points carry its attempt, and
are written only while that attempt still owns the run: the fenced flush (`flush_buffered`) is written once here,
and the rooms that must flush in their own transaction (a checkpoint, an attempt's end) call it."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from itertools import chain, groupby
from operator import itemgetter
from typing import Iterable, Iterator, Sequence, cast

import numpy as np
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lab_notes.records import Attempt
from lab_notes.metric_buffer import MetricBuffer, Pending, Point
from lab_notes.rooms import Room
from lab_notes.runs import LeaseLost, lease_lost
from lab_notes.schema import ImageRow, MetricRollupRow, MetricRow, SnapshotRow
from lab_notes.series import (BUCKET_STEPS, ROLLUP_COLUMNS, downsample, from_sql, overview, summarise,
                              upsert_rollups_sql)
from lab_notes.snapshots import KEPT_ON_RESUME

_value = itemgetter(3)
ROWS_PER_STATEMENT = 512
_attempt, _row = itemgetter(0), itemgetter(1)


class MetricsStore(Room):
    """Needs the runs room's `leases_lost_within` (the Notebook has both)."""

    def _start_metrics(self, flush_interval: float, flush_points: int) -> None:
        mark = self._placeholder
        self._insert_metrics_sql = "INSERT INTO metrics (run_id, key, step, value, wall_time, attempt) VALUES "
        self._metric_row = f"({', '.join([mark] * 6)})"
        self._unattributed_row = f"({', '.join([mark] * 5)}, NULL)"
        self._upsert_rollups_sql = upsert_rollups_sql(mark)
        self.buffer = MetricBuffer()
        self.flush_points = flush_points
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_periodically, args=(flush_interval,), daemon=True,
                                         name="notebook-flusher")
        self._flusher.start()

    # --- writing ---------------------------------------------------------------------------------------------

    def log_metrics(self, run_id: int, step: int, values: dict[str, float], wall_time: float | None = None, *,
                    attempt: Attempt | None = None) -> None:
        """Buffer one step's values; they reach the database within ~0.5 s, at 1000 points, or on flush/close.
        With `attempt`, they are dropped (and the flush raises LeaseLost) if the attempt lost the run."""
        stamp = time.time() if wall_time is None else wall_time
        number = attempt.number if attempt is not None else None
        rows = [(attempt, (run_id, key, step, None if (v := float(value)) != v else v, stamp, number))
                for key, value in values.items()]
        if self.buffer.add(rows) >= self.flush_points:
            self.flush()

    def log_batch(self, rows: Iterable[tuple[int, str, int, float, float]]) -> None:
        """Write (run_id, key, step, value, wall_time) rows now, in one transaction, unbuffered and unfenced (an
        import or a benchmark; a run process logs through `log_metrics`)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return
        with self._writer.begin() as connection:
            if self.dialect == "sqlite" and set(map(type, map(_value, rows))) <= {float}:
                # Already floats: written as given, without a per-point copy. SQLite stores a NaN as NULL itself,
                # as `to_sql` would, and the rollups read NaN and NULL alike.
                self._insert_rows(connection, self._unattributed_row, rows)
                self._write_rollups(connection, rows)
                return
            # NaN as NULL as `to_sql` does, inlined: this comprehension is on every point's path (x != x only for NaN)
            self._write_points(connection, [(run_id, key, step, None if (v := float(value)) != v else v, wall_time,
                                             None) for run_id, key, step, value, wall_time in rows])

    def flush(self) -> None:
        """Write what is buffered. Points of an attempt that lost its run are dropped, then LeaseLost is raised;
        on a database error the points stay buffered for the next flush."""
        with self.flush_buffered(skip_when_empty=True) as (_, lost):
            pass
        if lost:
            raise LeaseLost("; ".join(str(lease_lost(a)) for a in lost))

    @contextmanager
    def flush_buffered(self, also: Attempt | None = None, *, skip_when_empty: bool = False
                       ) -> Iterator[tuple[Session | None, set[Attempt]]]:
        """The fenced flush, the one place it is written: take what is buffered (one flusher at a time), open a
        write transaction, write the points whose attempt still owns its run, and yield (session, the attempts
        that lost their run, `also` among them when it did) so the caller adds its own rows to the same
        transaction. On any error the points go back to the buffer for the next flush. With `skip_when_empty`
        and nothing buffered, no transaction is opened: yields (None, set())."""
        with self.buffer.flush_lock:
            pending = self.buffer.take()
            if skip_when_empty and not pending:
                yield None, set()
                return
            try:
                with self._write() as session:
                    lost = self._write_fenced(session.connection(), pending, also)
                    yield session, lost
            except Exception:
                self.buffer.restore(pending)
                raise

    def _write_fenced(self, connection: Connection, pending: Pending, also: Attempt | None) -> set[Attempt]:
        """Write the points whose attempt (if any) still owns its run; returns the attempts that do not, among
        them `also` (the writer's own attempt, checked even when it has no points buffered)."""
        # the distinct attempts of runs of points (one object each, nearly always): groupby compares by identity
        # first, where a set would call the dataclass's Python __hash__ once per point
        attempts = {a for a, _ in groupby(map(_attempt, pending)) if a is not None} | ({also} if also is not None else set())
        lost = self.leases_lost_within(connection, attempts)
        rows = [row for attempt, row in pending if attempt not in lost] if lost else list(map(_row, pending))
        if rows:
            self._write_points(connection, rows)
        return lost

    def _write_points(self, connection: Connection, rows: Sequence[Point]) -> None:
        self._insert_rows(connection, self._metric_row, rows)
        self._write_rollups(connection, rows)

    def _insert_rows(self, connection: Connection, row: str, rows: Sequence[Sequence]) -> None:
        """Insert `rows` into metrics, each as the placeholders `row` (inside the caller's transaction). On SQLite,
        as a few INSERTs of up to 512 rows each, not one per row: sqlite3's executemany lets go of the GIL and takes
        it back for every row, and a training loop in the same process then waits for the GIL at each of its own
        operations. Measured: the writer's time per point 3.2 -> 2.2 us (flushes of 1,250 points), and a tight loop
        that logs each step +3.8 -> +3.5 % (60 interleaved pairs). The statements' sizes are powers of two, so the
        few of them stay in sqlite3's statement cache."""
        if self.dialect != "sqlite":
            connection.exec_driver_sql(self._insert_metrics_sql + row, rows)
            return
        if not rows:
            return
        sqlite = cast(sqlite3.Connection, connection.connection.driver_connection)
        variables = sqlite.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # 32,766 by default; 999 before 3.32
        width = row.count("?")
        most, start = _power_of_two_at_most(min(ROWS_PER_STATEMENT, variables // width)), 0
        try:
            if set(map(len, rows)) != {width}:  # flattened, a short row and a long one would shift into each other
                raise sqlite3.ProgrammingError(f"Incorrect number of bindings supplied: rows of "
                                               f"{sorted(set(map(len, rows)))} values for {width} columns")
            while start < len(rows):
                count = min(most, _power_of_two_at_most(len(rows) - start))
                sql = _values_sql(self._insert_metrics_sql, row, count)
                sqlite.execute(sql, list(chain.from_iterable(rows[start:start + count])))
                start += count
        except sqlite3.Error as error:  # as SQLAlchemy would raise it: callers catch DBAPIError and its kinds
            raise DBAPIError.instance(self._insert_metrics_sql + row, rows, error, sqlite3.Error) from error

    def _executemany(self, connection: Connection, sql: str, rows: Sequence[Sequence]) -> None:
        """On SQLite, sqlite3's own executemany on the connection under `connection` (inside its transaction),
        without SQLAlchemy's per-call statement set-up: this runs on every flush."""
        if self.dialect != "sqlite":
            connection.exec_driver_sql(sql, rows)
            return
        try:
            connection.connection.driver_connection.executemany(sql, rows)  # type: ignore[union-attr]
        except sqlite3.Error as error:  # as SQLAlchemy would raise it: callers catch DBAPIError and its kinds
            raise DBAPIError.instance(sql, rows, error, sqlite3.Error) from error

    def _write_rollups(self, connection: Connection, points: Sequence[Sequence]) -> None:
        """Fold new points into their buckets' summaries inside the caller's transaction: one upsert whose
        ON CONFLICT clause is `series.merge` in SQL (SQLite and PostgreSQL alike), instead of a read, a delete and
        an insert per series. Plain driver SQL: this runs on every flush."""
        fresh = summarise(points)
        if fresh:
            self._executemany(connection, self._upsert_rollups_sql, [
                (*where, *(summary[c] for c in ROLLUP_COLUMNS)) for where, summary in fresh.items()])

    def discard_after(self, run_id: int, step: int) -> None:
        """Drop metrics, images and snapshots (not provenance) logged after `step` (a resumed run logs those steps again)."""
        self.flush()
        with self._writer.begin() as connection:
            self._discard_after(connection, run_id, step)

    def _discard_after(self, connection: Connection, run_id: int, step: int) -> None:
        first_bucket = step // BUCKET_STEPS
        connection.execute(delete(MetricRow).where(MetricRow.run_id == run_id, MetricRow.step > step))
        connection.execute(delete(ImageRow).where(ImageRow.run_id == run_id, ImageRow.step > step))
        connection.execute(delete(SnapshotRow).where(SnapshotRow.run_id == run_id, SnapshotRow.step > step,
                                                     SnapshotRow.kind.not_in(KEPT_ON_RESUME)))
        connection.execute(delete(MetricRollupRow).where(MetricRollupRow.run_id == run_id,
                                                         MetricRollupRow.bucket >= first_bucket))
        kept = connection.execute(select(MetricRow.run_id, MetricRow.key, MetricRow.step, MetricRow.value)
                                  .where(MetricRow.run_id == run_id,
                                         MetricRow.step >= first_bucket * BUCKET_STEPS)).all()
        self._write_rollups(connection, kept)

    def _flush_periodically(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - retried by the next flush or close(); a lost lease is the run's
                pass           # heartbeat's to act on

    # --- reading ---------------------------------------------------------------------------------------------

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

    def metric_median(self, run_id: int, key: str) -> float | None:
        """The median of the run's finite values of `key`, None when it has none: a run's typical speed, as its
        Run page and its journal draft both give it (one step's reading is noisy)."""
        values = self.metric_history(run_id, key)[1]
        finite = values[np.isfinite(values)]
        return float(np.median(finite)) if len(finite) else None


@lru_cache(maxsize=64)
def _values_sql(insert: str, row: str, count: int) -> str:
    """`insert` (up to VALUES) of `count` rows, each the placeholders `row`."""
    return insert + ", ".join([row] * count)


def _power_of_two_at_most(count: int) -> int:
    return 1 << (count.bit_length() - 1)
