"""What the notebook's rooms call in one another, declared once so a type checker sees every call across rooms.

Each room (runs, metrics, artifacts, snapshots, frames, …) is a `Room`; `Notebook` inherits them all, so at run
time these names resolve to the one room that defines each. Declared only for the type checker: nothing here runs."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from lab_notes.db import Database
from lab_notes.records import Attempt, Figure, Run


class Room(Database):
    """One room of the notebook; the methods below belong to the room named beside each."""

    if TYPE_CHECKING:
        # runs
        def list_runs(self, status: str | Sequence[str] | None = None, search: str | None = None, *,
                      owner: str | None = None) -> list[Run]: ...
        def ensure_attempt_owns_run(self, session: Session, attempt: Attempt | None) -> None: ...
        def leases_lost_within(self, connection: Connection, attempts: Iterable[Attempt]) -> set[Attempt]: ...

        # metrics
        def flush(self) -> None: ...
        def flush_buffered(self, also: Attempt | None = None, *, skip_when_empty: bool = False
                           ) -> AbstractContextManager[tuple[Session | None, set[Attempt]]]: ...
        def _discard_after(self, connection: Connection, run_id: int, step: int) -> None: ...
        def latest_metrics(self, run_id: int) -> dict[str, tuple[int, float]]: ...

        # snapshots
        def latest_snapshots(self, run_ids: Iterable[int], kind: str) -> dict[int, dict[str, Any]]: ...

        # notes
        def _insert_note(self, session: Session, entry_date: dt.date | None, title: str, body: str, *,
                         run_ids: Sequence[int], figures: Sequence[Figure], tags: Sequence[str],
                         owner: str | None = None) -> int: ...
