"""`NotebookSink`: the engine's Sink protocol, writing into the notebook under one attempt of a run (no torch
here). Every write carries the attempt, so a process that lost its run writes nothing more; a database outage
is waited out, not turned into a failed run."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from sqlalchemy.exc import OperationalError

from lab_notes.artifacts import path_to_record
from lab_notes.keys import (EVENT_CHECKPOINT, EVENT_DIVERGENCE, EVENT_EVALUATION, EVENT_FEATURES, EVENT_HISTOGRAMS,
                            EVENT_PROVENANCE, EVENT_STARTED, EVENT_STATUS,
                            SNAPSHOT_FEATURES, SNAPSHOT_FEW_SHOT, SNAPSHOT_HISTOGRAMS, SNAPSHOT_PROVENANCE)
from lab_notes.records import Attempt
from lab_notes.store import Notebook

STOP_POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 2.0
OUTAGE_PATIENCE_SECONDS = 300.0
# training-loop events stored as snapshots, by the kind they are stored under
SNAPSHOT_EVENTS = {EVENT_FEATURES: SNAPSHOT_FEATURES, EVENT_EVALUATION: SNAPSHOT_FEW_SHOT,
                   EVENT_HISTOGRAMS: SNAPSHOT_HISTOGRAMS}
T = TypeVar("T")


def retry_while_unreachable(write: Callable[[], T], patience: float = OUTAGE_PATIENCE_SECONDS) -> T:
    """Retry `write` while the database is unreachable or busy (OperationalError), backing off up to 5 s."""
    deadline, pause = time.monotonic() + patience, 0.2
    while True:
        try:
            return write()
        except OperationalError as error:
            if time.monotonic() > deadline:
                raise
            print(f"notebook unreachable ({type(error.orig).__name__}); retrying in {pause:.1f} s",
                  file=sys.stderr, flush=True)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)




class NotebookSink:
    """Streams one attempt's metrics, images and events into the notebook; asks to stop when the run's stop flag
    is set (read at most every STOP_POLL_SECONDS, so a fast loop does not query the database every step)."""

    def __init__(self, notebook: Notebook, attempt: Attempt,
                 on_lease_lost: Callable[[], None] | None = None, artifact_root: str | Path | None = None) -> None:
        """With `on_lease_lost`, the sink also heartbeats the attempt's lease (a thread, on the database's clock)
        and calls it as soon as the run no longer belongs to this attempt. With `artifact_root`, checkpoint files
        under it are recorded relative to it (any host that mounts it finds them)."""
        self.notebook = notebook
        self.attempt = attempt
        self.artifact_root = artifact_root
        self.run_id = attempt.run_id
        self._stop = False
        self._first_point_written = False
        self._stop_checked = 0.0
        self._finished = threading.Event()
        self._heartbeat = None
        if on_lease_lost is not None:
            self._heartbeat = threading.Thread(target=self._keep_lease, args=(on_lease_lost,), daemon=True,
                                               name="attempt-heartbeat")
            self._heartbeat.start()

    def _keep_lease(self, on_lease_lost: Callable[[], None]) -> None:
        pause = 0.0  # the first at once: the worker's sweep counts from the claim
        while not self._finished.wait(pause):
            pause = HEARTBEAT_SECONDS
            try:
                held = self.notebook.heartbeat(self.attempt)
            except OperationalError:
                continue  # unreachable: try again; the reaper allows for outages it saw itself
            if not held and not self._finished.is_set():
                on_lease_lost()
                return

    def stop_heartbeat(self) -> None:
        """The attempt is ending on its own: its lease is no longer renewed (nor missed)."""
        self._finished.set()
        if self._heartbeat is not None and self._heartbeat is not threading.current_thread():
            self._heartbeat.join()

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        try:
            self.notebook.log_metrics(self.run_id, step, values, attempt=self.attempt)
            if not self._first_point_written:  # someone who just pressed Launch is waiting for it: no buffering
                self.notebook.flush()
                self._first_point_written = True
        except OperationalError:
            pass  # the points stay buffered; the next flush writes them once the database is back

    def log_image(self, key: str, step: int, png: bytes) -> None:
        retry_while_unreachable(lambda: self.notebook.log_image(self.run_id, key, step, png, attempt=self.attempt))

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == EVENT_STARTED:
            device = f"{payload['device']} ({payload['precision']})"
            retry_while_unreachable(lambda: self.notebook.set_device(self.attempt, device))
        elif kind == EVENT_CHECKPOINT:
            path = payload["path"] if self.artifact_root is None else path_to_record(payload["path"],
                                                                                     self.artifact_root)
            retry_while_unreachable(lambda: self.notebook.add_checkpoint(self.run_id, payload["step"], path,
                                                                         attempt=self.attempt))
        elif kind == EVENT_PROVENANCE:  # one per attempt, kept whichever step the run is later resumed from
            retry_while_unreachable(lambda: self.notebook.log_snapshot(
                self.run_id, SNAPSHOT_PROVENANCE, payload["step"], payload, key=str(self.attempt.number),
                attempt=self.attempt))
        elif kind in SNAPSHOT_EVENTS:
            retry_while_unreachable(lambda: self.notebook.log_snapshot(
                self.run_id, SNAPSHOT_EVENTS[kind], payload["step"], payload, attempt=self.attempt))
        elif kind == EVENT_DIVERGENCE:
            retry_while_unreachable(lambda: self.notebook.add_divergence_incident(self.attempt, payload))
        elif kind == EVENT_STATUS:
            self.finish(payload["status"], report=payload.get("report"))

    def finish(self, status: str, *, report: dict[str, Any] | None = None, reason: str | None = None) -> None:
        """End the attempt: final status and report at once. A diverged run's journal entry is its draft
        (engine.journal_drafts, written once the run has ended), no longer a note of its own."""
        reason = reason or (report or {}).get("reason")
        self.stop_heartbeat()
        retry_while_unreachable(lambda: self.notebook.finish_attempt(self.attempt, status, reason=reason,
                                                                     report=report))

    def should_stop(self) -> bool:
        if not self._stop and time.monotonic() - self._stop_checked >= STOP_POLL_SECONDS:
            self._stop_checked = time.monotonic()
            try:
                self._stop = self.notebook.stop_requested(self.run_id)
            except OperationalError:
                pass  # unreachable for now: keep training, ask again later
        return self._stop

