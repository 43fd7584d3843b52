"""What a run records as a JSON document at a step, by kind: held-out feature maps ("features"), the end-of-run
few-shot report ("few_shot", its eval.json), weight and gradient histograms ("histograms"), and each attempt's
provenance ("provenance", keyed by the attempt's number). Plain JSON in, plain JSON out; written under the run's
attempt, refused once the attempt no longer owns the run."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import delete, select

from lab_notes.db import NotFound
from lab_notes.keys import SNAPSHOT_PROVENANCE
from lab_notes.records import Attempt, Snapshot
from lab_notes.rooms import Room
from lab_notes.schema import SnapshotRow

KEPT_ON_RESUME = (SNAPSHOT_PROVENANCE,)  # what each attempt was run with stays, whichever step it is resumed from


class SnapshotsStore(Room):
    """Needs the runs room's `ensure_attempt_owns_run` (the Notebook has both)."""

    def log_snapshot(self, run_id: int, kind: str, step: int, payload: dict[str, Any], *, key: str = "",
                     attempt: Attempt | None = None) -> None:
        """Store a document; a later one of the same kind and key at the same step replaces it."""
        with self._write() as session:
            self.ensure_attempt_owns_run(session, attempt)
            session.execute(delete(SnapshotRow).where(SnapshotRow.run_id == run_id, SnapshotRow.kind == kind,
                                                      SnapshotRow.step == step, SnapshotRow.key == key))
            session.add(SnapshotRow(run_id=run_id, kind=kind, step=step, key=key, payload=payload))

    def snapshot_steps(self, run_id: int, kind: str) -> list[int]:
        with self._read() as session:
            return list(session.scalars(select(SnapshotRow.step).where(SnapshotRow.run_id == run_id,
                                                                       SnapshotRow.kind == kind)
                                        .order_by(SnapshotRow.step).distinct()))

    def snapshot(self, run_id: int, kind: str, step: int, key: str = "") -> dict[str, Any]:
        with self._read() as session:
            payload = session.scalar(select(SnapshotRow.payload).where(
                SnapshotRow.run_id == run_id, SnapshotRow.kind == kind, SnapshotRow.step == step,
                SnapshotRow.key == key))
        if payload is None:
            raise NotFound(f"no {kind} snapshot at step {step} of run {run_id}")
        return payload

    def snapshots(self, run_id: int, kind: str) -> list[Snapshot]:
        """Every document of a kind, in the order written (so the last provenance is the latest attempt's, even
        when that attempt resumed from an earlier step than the one before it)."""
        with self._read() as session:
            rows = session.execute(select(SnapshotRow.step, SnapshotRow.key, SnapshotRow.payload).where(
                SnapshotRow.run_id == run_id, SnapshotRow.kind == kind).order_by(SnapshotRow.id))
            return [Snapshot(step, key, payload) for step, key, payload in rows]

    def latest_snapshots(self, run_ids: Iterable[int], kind: str) -> dict[int, dict[str, Any]]:
        """Each run's most recently written document of a kind, for the runs that have one."""
        with self._read() as session:
            rows = session.execute(select(SnapshotRow.run_id, SnapshotRow.payload).where(
                SnapshotRow.run_id.in_(list(run_ids)), SnapshotRow.kind == kind).order_by(SnapshotRow.id)).all()
        return {run_id: payload for run_id, payload in rows}  # later rows overwrite earlier ones
