"""`MetricBuffer`: metric points waiting to be written, owned by one object (the list, its lock, and the lock
that keeps one flusher at a time) rather than spread as private state over the notebook's rooms."""

from __future__ import annotations

import threading

from lab_notes.records import Attempt

Point = tuple[int, str, int, "float | None", float, "int | None"]  # run, key, step, value, wall time, attempt
Pending = list[tuple["Attempt | None", Point]]


class MetricBuffer:
    """Points in the order they were logged, each with the attempt that logged it (None: not a run process)."""

    def __init__(self) -> None:
        self._points: Pending = []
        self._lock = threading.Lock()
        # One flusher at a time keeps each writer's points in step order in the database.
        self.flush_lock = threading.Lock()

    def add(self, points: Pending) -> int:
        """Append `points`; returns how many are buffered now."""
        with self._lock:
            self._points.extend(points)
            return len(self._points)

    def __len__(self) -> int:
        """How many points wait (read without the lock: a bound, not an exact count under concurrent adds)."""
        return len(self._points)

    def take(self) -> Pending:
        """Everything buffered, leaving the buffer empty."""
        with self._lock:
            pending, self._points = self._points, []
        return pending

    def restore(self, pending: Pending) -> None:
        """Put back points a failed write took, ahead of any logged since: kept for the next flush, not lost."""
        with self._lock:
            self._points[:0] = pending
