"""Sweeps: sibling runs over a grid or list of values of up to three config fields, queued together (all of them
or none) and looked at together."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import select

from lab_notes.db import Database, NotFound, as_utc, now
from lab_notes.records import Sweep
from lab_notes.runs import queued_run_row
from lab_notes.schema import RunRow, SweepRow


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep as it is queued: its name, config, lint and where it may run (None = anywhere)."""

    name: str
    config: dict[str, Any]
    lint: Sequence[Any] = ()
    pinned_host: str | None = None
    pinned_gpu: str | None = None


class SweepsStore(Database):
    def create_sweep(self, *, name: str, preset: str | None, mode: str, fields: dict[str, list[Any]],
                     runs: Sequence[SweepRun | tuple[str, dict[str, Any], Sequence[Any]]], owner: str | None = None
                     ) -> int:
        """(new) -> queued for every run of the sweep (a `SweepRun`, or a (name, config, lint) for any host), in
        one transaction: a sweep is never queued half. Every run is `owner`'s (None: the local user)."""
        with self._write() as session:
            sweep = SweepRow(name=name, preset=preset, mode=mode, fields=fields, created_at=now())
            session.add(sweep)
            session.flush()
            for run in runs:
                run = run if isinstance(run, SweepRun) else SweepRun(*run)
                session.add(queued_run_row(name=run.name, preset=preset, config=run.config, lint=run.lint,
                                           owner=owner, pinned_host=run.pinned_host, pinned_gpu=run.pinned_gpu,
                                           sweep_id=sweep.id))
            return sweep.id

    def get_sweep(self, sweep_id: int) -> Sweep:
        with self._read() as session:
            row = session.get(SweepRow, sweep_id)
            if row is None:
                raise NotFound(f"there is no sweep {sweep_id}")
            run_ids = list(session.scalars(select(RunRow.id).where(RunRow.sweep_id == sweep_id,
                                                                   RunRow.status != "deleted")
                                           .order_by(RunRow.id)))
            return Sweep(row.id, row.name, row.preset, row.mode, dict(row.fields), as_utc(row.created_at), run_ids)

    def list_sweeps(self) -> list[Sweep]:
        """Newest first."""
        with self._read() as session:
            ids = list(session.scalars(select(SweepRow.id).order_by(SweepRow.id.desc())))
        return [self.get_sweep(i) for i in ids]
