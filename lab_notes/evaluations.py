"""What a run's evaluations left: each periodic evaluation's held-out feature map (drawn by step on the run page)
and the end-of-run few-shot report (its eval.json). Plain JSON in, plain JSON out; written under the run's
attempt, refused once the attempt no longer owns the run."""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import delete, select

from lab_notes.db import Database, NotFound
from lab_notes.records import Attempt
from lab_notes.schema import EvaluationRow


class EvaluationsStore(Database):
    """Needs the runs room's `_hold` (the Notebook has both)."""

    def log_evaluation(self, run_id: int, step: int, payload: dict[str, Any], *, final: bool = False,
                       attempt: Attempt | None = None) -> None:
        """Store a feature map (or, `final`, the few-shot report); a later one of the same kind at the same step
        replaces it."""
        with self._write() as session:
            self._hold(session, attempt)
            session.execute(delete(EvaluationRow).where(EvaluationRow.run_id == run_id, EvaluationRow.step == step,
                                                        EvaluationRow.final == final))
            session.add(EvaluationRow(run_id=run_id, step=step, final=final, payload=payload))

    def feature_map_steps(self, run_id: int) -> list[int]:
        with self._read() as session:
            return list(session.scalars(select(EvaluationRow.step).where(EvaluationRow.run_id == run_id,
                                                                         EvaluationRow.final.is_(False))
                                        .order_by(EvaluationRow.step)))

    def feature_map(self, run_id: int, step: int) -> dict[str, Any]:
        with self._read() as session:
            payload = session.scalar(select(EvaluationRow.payload).where(
                EvaluationRow.run_id == run_id, EvaluationRow.step == step, EvaluationRow.final.is_(False)))
        if payload is None:
            raise NotFound(f"no feature map at step {step} of run {run_id}")
        return payload

    def final_evaluations(self, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Each run's end-of-run few-shot report (eval.json), for those that have one."""
        with self._read() as session:
            rows = session.execute(select(EvaluationRow.run_id, EvaluationRow.payload).where(
                EvaluationRow.run_id.in_(list(run_ids)), EvaluationRow.final.is_(True))
                .order_by(EvaluationRow.step)).all()
        return {run_id: payload for run_id, payload in rows}

    def final_evaluation(self, run_id: int) -> dict[str, Any] | None:
        return self.final_evaluations([run_id]).get(run_id)
