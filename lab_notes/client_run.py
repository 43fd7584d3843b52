"""`TrackedRun`: one script's run as the tracking client sees it. `log` only checks the values and keeps them (so a
training loop that logs every step stays fast); a background thread moves them into the notebook's `MetricBuffer`
and writes them every FLUSH_SECONDS, under the run's attempt, and keeps them (bounded, counted) while the database is
unreachable. Images wait in the same way; notes are written at once."""

from __future__ import annotations

import collections
import datetime as dt
import operator
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import Any, Mapping

from sqlalchemy.exc import DataError, IntegrityError, OperationalError, ProgrammingError

from lab_notes.client_values import (LARGEST_STEP, BadValue, as_number, checked_key, checked_step, checked_text,
                                     image_png)
from lab_notes.keys import SNAPSHOT_HYPERPARAMETERS
from lab_notes.metric_buffer import Pending
from lab_notes.notebook_sink import NotebookSink, retry_while_unreachable
from lab_notes.records import Attempt
from lab_notes.runs import LeaseLost
from lab_notes.store import Notebook

FLUSH_SECONDS = 0.5
FLUSH_POINTS = 50_000  # more waiting than this wakes the writer early: memory stays small at any logging rate
MAX_BUFFERED_POINTS = 2_000_000  # ~30 min of 1,000 points/s kept through an outage (~0.3 GB), then counted
MAX_BUFFERED_IMAGE_BYTES = 256 * 1024 * 1024
# Errors that say the database will never take these rows (a value out of a column's range, text it cannot encode),
# unlike an outage (OperationalError), which is waited out.
REFUSED_BY_DATABASE = (DataError, IntegrityError, ProgrammingError, ValueError, OverflowError)
_now = time.time  # bound once: `log` stamps every call, and a module global is one lookup, not two
EXIT_PATIENCE_SECONDS = 120.0  # at exit, how long an unreachable database is waited for before giving up
TRACEBACK_LINES = 6
MAX_TITLE_CHARS = 500  # a note's title column


class RunEnded(RuntimeError):
    """Something was logged to a run that has ended (or that no longer belongs to this process)."""


def say(message: str) -> None:
    print(f"lab_notes: {message}", file=sys.stderr, flush=True)


class TrackedRun:
    """A run this process logs to. Owned (made by `start_run`): it heartbeats, and ends with a final status.
    Attached (launched by the notebook's worker, which heartbeats it and sets its status from the exit code):
    it only logs."""

    def __init__(self, notebook: Notebook, attempt: Attempt, *, name: str, owns_run: bool,
                 owner: str | None = None, max_buffered_points: int = MAX_BUFFERED_POINTS,
                 exit_patience: float = EXIT_PATIENCE_SECONDS) -> None:
        self.notebook = notebook
        self.attempt = attempt
        self.id = attempt.run_id
        self._attempt_number = attempt.number
        self.name = name
        self.owns_run = owns_run
        self.owner = owner
        self.max_buffered_points = max_buffered_points
        self.exit_patience = exit_patience
        self.status: str | None = None  # the final status this process gave it (owned runs)
        self.dropped = 0  # points refused for want of room while the database was unreachable
        self.refused = 0  # points and images the database refused (not an outage: they could never be written)
        self.unwritten = 0  # points and images that could not be written by the end
        self._step = -1
        # points accepted, and how many of the first of them are surely written: what waits is the difference (exact
        # during an outage, when nothing is written; a little over otherwise, which only matters at the bound)
        self._accepted = 0
        self._written = 0
        self._ended: str | None = None  # why nothing more may be logged
        # what `log` kept, (step, ((key, value), ...), wall time) per call: a deque, since its append and popleft
        # are each safe against the other thread without a lock
        self._logged: collections.deque[tuple[int, tuple[tuple[str, float], ...], float]] = collections.deque()
        self._good_keys: set[str] = set()  # keys already checked
        self._images: collections.deque[tuple[str, int, bytes]] = collections.deque()
        self._image_bytes = 0
        self._unreachable_since: float | None = None
        self._last_failure: str | None = None  # the writer's last unexpected error, said once
        self._writing = threading.Lock()  # one writer of what was logged at a time
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._sink = NotebookSink(notebook, attempt, on_lease_lost=self._lease_lost if owns_run else None)
        self._writer = threading.Thread(target=self._write_periodically, daemon=True, name="lab-notes-client")
        self._writer.start()

    # --- what a script calls --------------------------------------------------------------------------------

    def log(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Record `values` (key -> number; NaN and ±inf kept) at `step` (default: one after the last). A bad key
        or value raises BadValue naming it, and then nothing of this call is kept."""
        # Every point passes here, between two steps of someone's training loop, where each line costs many times
        # what it costs alone (the step has just evicted it from the caches). So the common case (a dict of known
        # keys -> floats) keeps one tuple of the call and nothing more; the writer thread builds the rows.
        if self._ended is not None:
            raise RunEnded(self._ended)
        if step is None:
            step = self._step + 1
        elif type(step) is not int or not 0 <= step <= LARGEST_STEP:
            step = self._checked_step(step)
        if type(values) is not dict:
            values = _checked_mapping(values)
        items = tuple(values.items())  # a copy: the caller may change its dict after the call
        for key, value in items:
            if type(value) is not float or key not in self._good_keys:
                items = self._checked_items(items)
                break
        self._step = step
        waiting = self._accepted - self._written + len(items)
        if waiting > self.max_buffered_points:
            if not self.dropped:
                say(f"run {self.id}: {self.max_buffered_points:,} points wait for the notebook already; further "
                    f"points are counted and dropped until it is reachable")
            self.dropped += len(items)
            return
        self._accepted += len(items)
        self._logged.append((step, items, _now()))
        if waiting >= FLUSH_POINTS > waiting - len(items):  # wake the writer once as the waiting pass the mark
            self._wake.set()

    def log_image(self, key: str, image: Any, step: int | None = None) -> None:
        """Record an image: a numpy array (H, W[, C]) of uint8 or of floats in 0..1, or a PIL image."""
        if self._ended is not None:
            raise RunEnded(self._ended)
        step = max(self._step, 0) if step is None else self._checked_step(step)
        png = image_png(checked_key(key), image)
        if self._image_bytes + len(png) > MAX_BUFFERED_IMAGE_BYTES:
            self.dropped += 1
            say(f"run {self.id}: image {key!r} at step {step} dropped: images waiting for the notebook fill "
                f"{MAX_BUFFERED_IMAGE_BYTES >> 20} MB")
            return
        self._images.append((key, step, png))
        self._image_bytes += len(png)

    def note(self, text: str, *, title: str | None = None) -> int:
        """A dated journal note linked to this run (Markdown); its id. Its title is the first line unless given."""
        if self._ended is not None:
            raise RunEnded(self._ended)
        if not isinstance(text, str) or not text.strip():
            raise BadValue("note: the text must be a non-empty string")
        checked_text("note: the text", text)
        heading = (checked_text("note: the title", title, MAX_TITLE_CHARS) if title else
                   text.strip().splitlines()[0][:120])
        return retry_while_unreachable(lambda: self.notebook.add_note(
            dt.date.today(), heading, text, run_ids=[self.id], owner=self.owner))

    def log_hyperparameters(self, params: Mapping[str, Any]) -> None:
        """Keep the script's own settings with the run (a document, as JSON, beside its launch config)."""
        retry_while_unreachable(lambda: self.notebook.log_snapshot(
            self.id, SNAPSHOT_HYPERPARAMETERS, 0, dict(params), attempt=self.attempt))

    @property
    def last_step(self) -> int:
        """The step of the last `log` call (-1 before any)."""
        return self._step

    @property
    def stop_requested(self) -> bool:
        """Whether someone asked this run to stop (the Stop button): a loop may check it and end early."""
        return self._sink.stop_requested()

    def flush(self) -> None:
        """Write everything logged so far now (waits through an outage, up to the exit patience)."""
        self._write_until_written(self.exit_patience)

    def finish(self, status: str = "completed", reason: str | None = None) -> None:
        """End the run: write what waits, then (an owned run) its final status. Safe to call twice."""
        if self._closing.is_set():
            return
        self._ended = f"run {self.id} has ended ({status}): nothing more can be logged to it"
        self._closing.set()
        self._wake.set()
        self._writer.join()
        left = self._write_until_written(self.exit_patience)
        if left:  # counted below; dropped, since the status is written with whatever still waits, which would fail it
            with self._writing:
                self.notebook.buffer.take()
                self._images.clear()
        if self.owns_run:
            self._sink.stop_heartbeat()
            try:
                retry_while_unreachable(lambda: self.notebook.finish_attempt(self.attempt, status, reason=reason),
                                        patience=self.exit_patience)
                self.status = status
            except LeaseLost:
                say(f"run {self.id}: no longer this process's run (reaped, or deleted); its status stays as is")
            except OperationalError as error:
                say(f"run {self.id}: the notebook stayed unreachable; its status could not be set to {status} "
                    f"({type(error.orig).__name__})")
        self.unwritten = left + self.dropped + self.refused
        if self.unwritten:
            say(f"run {self.id}: {self.unwritten:,} points or images could not be written to the notebook "
                f"({self.dropped:,} dropped while it was unreachable and the buffer was full, {self.refused:,} "
                f"refused by the database, {left:,} still "
                f"waiting at exit)")
        try:
            self.notebook.close()
        except Exception:  # noqa: BLE001 - what could not be written is counted above
            self.notebook.dispose()

    @property
    def finished(self) -> bool:
        """Whether `finish` has run (the block ended, or it was called)."""
        return self._closing.is_set()

    def __enter__(self) -> "TrackedRun":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.finish(*outcome(kind, error, trace))

    # --- the writer -----------------------------------------------------------------------------------------

    def _write_periodically(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self._write_pending()
            except OperationalError as error:
                self._unreachable(error)
            except LeaseLost:
                self._lease_lost()
            except Exception as error:  # noqa: BLE001 - the writer must outlive any one write: retried, and
                failure = f"{type(error).__name__}: {error}"  # what is still left at the end is counted then
                if failure != self._last_failure:
                    say(f"run {self.id}: writing failed ({failure}); retrying")
                self._last_failure = failure

    def _write_pending(self) -> None:
        with self._writing:  # the writer thread, and flush() or finish() on the script's thread
            self._write_pending_alone()

    def _write_pending_alone(self) -> None:
        accepted = self._accepted
        self._buffer_logged()
        try:
            self.notebook.flush()
        except REFUSED_BY_DATABASE as error:  # kept, the refused rows would block every point after them
            self._refused(self._write_around_refusals(self.notebook.buffer.take()), error)
        self._written = accepted
        while self._images:
            key, step, png = self._images[0]
            try:
                self.notebook.log_image(self.id, key, step, png, attempt=self.attempt)
            except REFUSED_BY_DATABASE as error:
                self._refused(1, error)
            self._images.popleft()
            self._image_bytes -= len(png)
        if self._unreachable_since is not None:
            say(f"run {self.id}: the notebook is reachable again after {time.monotonic() - self._unreachable_since:.0f}"
                f" s; what waited is written")
            self._unreachable_since = None

    def _write_around_refusals(self, pending: Pending) -> int:
        """Write `pending`, a batch the database refused, in halves and halves of those, so that only the rows it
        refuses are dropped; how many those were. An outage part-way leaves the unwritten rest buffered, in order."""
        refused, parts = 0, [pending]
        while parts:
            part = parts.pop(0)
            self.notebook.buffer.add(part)
            try:
                self.notebook.flush()
            except REFUSED_BY_DATABASE:
                part = self.notebook.buffer.take()  # put back by the failed flush
                if len(part) == 1:
                    refused += 1
                else:
                    parts[:0] = [part[:len(part) // 2], part[len(part) // 2:]]
            except BaseException:
                for rest in parts:  # behind the part the failed flush put back
                    self.notebook.buffer.add(rest)
                raise
        return refused

    def _buffer_logged(self) -> None:
        """Move what `log` kept into the notebook's buffer as rows of this attempt (NaN stored as NULL)."""
        logged, attempt, run_id, number = self._logged, self.attempt, self.id, self._attempt_number
        rows: Pending = []
        add = rows.append
        for _ in range(len(logged)):
            step, items, stamp = logged.popleft()
            for key, value in items:  # a loop, not a comprehension: one frame fewer per call logged
                add((attempt, (run_id, key, step, None if value != value else value, stamp, number)))
        if rows:
            self.notebook.buffer.add(rows)

    def _checked_items(self, items: tuple[tuple[Any, Any], ...]) -> tuple[tuple[str, float], ...]:
        """`items` with each key checked and each value a float (BadValue naming the first bad one); the keys are
        then known good."""
        checked = tuple((checked_key(key), value if type(value) is float else as_number(key, value))
                        for key, value in items)
        self._good_keys.update(key for key, _ in checked)
        return checked

    def _refused(self, count: int, error: BaseException) -> None:
        self.refused += count
        say(f"run {self.id}: the notebook refused {count:,} points or images ({type(error).__name__}: "
            f"{(str(error).splitlines() or [''])[0][:200]}); they are dropped and counted")

    def _unreachable(self, error: OperationalError) -> None:
        if self._unreachable_since is None:
            self._unreachable_since = time.monotonic()
            say(f"run {self.id}: the notebook is unreachable ({type(error.orig).__name__}); keeping points "
                f"(up to {self.max_buffered_points:,}) and retrying")

    def _write_until_written(self, patience: float) -> int:
        """Write what waits, retrying while the database is unreachable for up to `patience` s; how many points
        and images are left unwritten."""
        deadline, pause = time.monotonic() + patience, 0.2
        while True:
            try:
                self._write_pending()
                return 0
            except LeaseLost:
                self._lease_lost()
                return len(self.notebook.buffer) + len(self._images)
            except OperationalError as error:
                self._unreachable(error)
                if time.monotonic() > deadline:
                    return len(self.notebook.buffer) + len(self._images)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
            except Exception as error:  # noqa: BLE001 - not an outage, nor a refusal: said, and what is left counted
                say(f"run {self.id}: writing failed ({type(error).__name__}: {error})")
                return len(self.notebook.buffer) + len(self._images)

    def _lease_lost(self) -> None:
        self._ended = (f"run {self.id} no longer belongs to this process (reaped as stale, or deleted): nothing "
                       f"more can be logged to it")

    def _checked_step(self, step: Any) -> int:
        try:
            step = operator.index(step)
        except TypeError:
            raise BadValue(f"step {step!r}: a step is a whole number, not {type(step).__name__}") from None
        return checked_step(step)


def _checked_mapping(values: Any) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise BadValue(f"log takes a mapping of key -> number, not {type(values).__name__}")
    return values


def outcome(kind: type[BaseException] | None, error: BaseException | None,
            trace: TracebackType | None) -> tuple[str, str | None]:
    """(final status, reason) for a run whose block ended this way: normally, by Ctrl-C, by sys.exit, or by an
    exception (the traceback's last lines as the reason)."""
    if kind is None:
        return "completed", None
    if issubclass(kind, KeyboardInterrupt):
        return "stopped", "interrupted (Ctrl-C)"
    if issubclass(kind, SystemExit) and isinstance(error, SystemExit) and error.code in (None, 0):
        return "completed", None
    if issubclass(kind, SystemExit) and isinstance(error, SystemExit):
        return "failed", f"the script exited with {error.code!r}"
    lines = "".join(traceback.format_exception(kind, error, trace)).rstrip().splitlines()
    return "failed", "\n".join(lines[-TRACEBACK_LINES:])
