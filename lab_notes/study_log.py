"""Searches: sweeps whose runs a study chooses one after another. The study is an append-only log of JSON entries
(Optuna's journal, written by `engine.search_storage`) kept in the notebook's own `study_log` table, so it lives,
is backed up and is restored with the notebook, on SQLite and PostgreSQL alike.

One step of a search happens in one write transaction (`search_step`): the sweep's row is locked, the log read
and appended, and the runs of newly asked trials queued, all committed together or not at all. A process killed
mid-step leaves neither a trial asked without its run nor a run without its trial; two workers stepping the same
search take turns."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lab_notes.db import Database, NotFound, now
from lab_notes.runs import queued_run_row
from lab_notes.schema import RunRow, StudyLogRow, SweepRow
from lab_notes.sweeps import SweepRun

SEARCH_MODE = "search"


@dataclass(frozen=True)
class TrialRun:
    """The run that evaluates one trial of a search, as the search sees it."""

    trial: int
    run_id: int
    status: str
    status_reason: str | None


@dataclass(frozen=True)
class Search:
    """A search's sweep: its ranges as typed (path -> text) and its settings (objective, budget, sampler …)."""

    sweep_id: int
    name: str
    preset: str | None
    fields: dict[str, Any]
    settings: dict[str, Any]


class SearchStep:
    """What one step of a search may read and write, inside its transaction (see the module's docstring)."""

    def __init__(self, session: Session, search: Search) -> None:
        self.session = session
        self.search = search

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        """The study's entries from `log_number_from` on (0: all), in order."""
        return list(self.session.scalars(select(StudyLogRow.entry).where(
            StudyLogRow.sweep_id == self.search.sweep_id, StudyLogRow.seq >= log_number_from)
            .order_by(StudyLogRow.seq)))

    def append_logs(self, entries: list[dict[str, Any]]) -> None:
        """Entries after the last one (the sweep's row is locked, so no one else appends meanwhile)."""
        last = self.session.scalar(select(func.max(StudyLogRow.seq)).where(
            StudyLogRow.sweep_id == self.search.sweep_id))
        start = -1 if last is None else last
        for offset, entry in enumerate(entries, 1):
            self.session.add(StudyLogRow(sweep_id=self.search.sweep_id, seq=start + offset, entry=entry))
        self.session.flush()

    def trial_runs(self) -> dict[int, TrialRun]:
        """trial number -> its run (deleted runs too: a deleted trial is not asked for again)."""
        rows = self.session.execute(select(RunRow.trial, RunRow.id, RunRow.status, RunRow.status_reason).where(
            RunRow.sweep_id == self.search.sweep_id, RunRow.trial.is_not(None)))
        return {r.trial: TrialRun(r.trial, r.id, r.status, r.status_reason) for r in rows}

    def queue_trial_run(self, trial: int, run: SweepRun) -> int:
        """(new) -> queued: the run of `trial`, its owner the search's; the unique (sweep, trial) index refuses a
        second one."""
        row = queued_run_row(name=run.name, preset=self.search.preset, config=run.config, lint=run.lint,
                             owner=self.search.settings.get("owner"), pinned_host=run.pinned_host,
                             pinned_gpu=run.pinned_gpu, sweep_id=self.search.sweep_id)
        row.trial = trial
        self.session.add(row)
        self.session.flush()
        return row.id

    def mark_done(self) -> None:
        """The search has spent its budget and every trial has ended: steps skip it from now on."""
        settings = {**self.search.settings, "done": True}
        self.session.execute(update(SweepRow).where(SweepRow.id == self.search.sweep_id).values(search=settings))


class StudyLogStore(Database):
    def create_search(self, *, name: str, preset: str | None, fields: dict[str, Any], settings: dict[str, Any],
                      owner: str | None = None) -> int:
        """A search's sweep, with no run yet: the worker's search step asks its first trials."""
        with self._write() as session:
            row = SweepRow(name=name, preset=preset, mode=SEARCH_MODE, fields=fields, created_at=now(),
                           search={**settings, "owner": owner, "done": False})
            session.add(row)
            session.flush()
            return row.id

    def get_search(self, sweep_id: int) -> Search:
        with self._read() as session:
            row = session.get(SweepRow, sweep_id)
            if row is None or row.mode != SEARCH_MODE:
                raise NotFound(f"there is no search {sweep_id}")
            return _search(row)

    def active_searches(self) -> list[int]:
        """Searches that still have trials to ask or to tell, oldest first."""
        with self._read() as session:
            rows = session.scalars(select(SweepRow).where(SweepRow.mode == SEARCH_MODE).order_by(SweepRow.id))
            return [row.id for row in rows if not (row.search or {}).get("done")]

    def study_entries(self, sweep_id: int) -> list[dict[str, Any]]:
        """The whole journal of a search, read-only (the Sweep page replays it)."""
        with self._read() as session:
            return list(session.scalars(select(StudyLogRow.entry).where(StudyLogRow.sweep_id == sweep_id)
                                        .order_by(StudyLogRow.seq)))

    def trial_numbers(self, sweep_id: int) -> dict[int, int]:
        """run id -> trial number, for a search's runs."""
        with self._read() as session:
            rows = session.execute(select(RunRow.id, RunRow.trial).where(RunRow.sweep_id == sweep_id,
                                                                         RunRow.trial.is_not(None)))
            return {r.id: r.trial for r in rows}

    @contextmanager
    def search_step(self, sweep_id: int) -> Iterator[SearchStep]:
        """One step of search `sweep_id` in one write transaction, its sweep row locked (SQLite: the write lock
        BEGIN IMMEDIATE takes; PostgreSQL: SELECT … FOR UPDATE). An exception rolls all of it back."""
        with self._write() as session:
            query = select(SweepRow).where(SweepRow.id == sweep_id)
            if self.dialect == "postgresql":
                query = query.with_for_update()
            row = session.scalars(query).first()
            if row is None or row.mode != SEARCH_MODE:
                raise NotFound(f"there is no search {sweep_id}")
            yield SearchStep(session, _search(row))


def _search(row: SweepRow) -> Search:
    return Search(row.id, row.name, row.preset, dict(row.fields), dict(row.search or {}))
