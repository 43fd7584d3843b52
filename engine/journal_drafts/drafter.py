"""The worker's drafter: a thread of its own, with its own notebook connections, that writes the draft of every
run that has ended. It is woken when the worker sees a run end and otherwise looks every few seconds, so a run
ended by anyone (the worker, the run itself, the stale-lease reaper, a crash between the end and the draft) gets
its draft; the worker's loop never waits for a figure to be drawn."""

from __future__ import annotations

import os
import threading
import traceback
from typing import Callable

from sqlalchemy.exc import OperationalError

from engine.journal_drafts.writer import catch_up
from lab_notes import Notebook

LOOK_EVERY_SECONDS = 3.0


def drafting_enabled() -> bool:
    """Whether workers write drafts: yes unless $LAB_JOURNAL_DRAFTS is off, 0 or false."""
    return os.environ.get("LAB_JOURNAL_DRAFTS", "on").strip().lower() not in ("off", "0", "false", "no")


class Drafter:
    def __init__(self, url: str, *, every: float = LOOK_EVERY_SECONDS,
                 report: Callable[[str], None] = print) -> None:
        self.url = url
        self.every = every
        self.report = report
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._failures: dict[str, int] = {}
        self._thread = threading.Thread(target=self._loop, name="journal-drafter", daemon=True)
        self.written = 0

    def start(self) -> "Drafter":
        """Start drafting, unless LAB_JOURNAL_DRAFTS=off (then endings wait for a later drafter's catch-up)."""
        if drafting_enabled():
            self._thread.start()
        return self

    def poke(self) -> None:
        """A run has ended: look now."""
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Write what is still missing, then stop (waiting at most `timeout` seconds)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        book = None
        first = True
        try:
            while True:
                stopping = self._stopping.is_set()
                try:
                    book = book or Notebook(self.url)
                    self._pass(book, all_sweeps=first)
                    first = False
                except OperationalError as error:
                    self.report(f"drafter: notebook unreachable ({type(error.orig).__name__}); trying again")
                except Exception:  # noqa: BLE001 - a bug in one draft must not end drafting for every run
                    traceback.print_exc()
                if stopping:
                    return
                self._wake.wait(self.every)
                self._wake.clear()
        finally:
            if book is not None:
                book.close()

    def _pass(self, book: Notebook, *, all_sweeps: bool) -> None:
        for entry in catch_up(book, failures=self._failures, all_sweeps=all_sweeps):
            self.report(f"drafter: wrote note {entry.note_id}: {entry.title}")
            self.written += 1
