"""Many runs at a glance: one page of runs with their latest numbers and progress, filtered, sorted and counted by
the database in one query, so the Runs page costs the same with ten thousand runs as with a hundred."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from sqlalchemy import func, select

from lab_notes.db import Database
from lab_notes.keys import EVAL_ACC_PROTOTYPE, IMAGES_PER_S, LOSS_TOTAL
from lab_notes.records import Run
from lab_notes.runs import matching, run_record
from lab_notes.schema import MetricRollupRow, RunRow

SUMMARY_KEYS = {"loss": LOSS_TOTAL, "accuracy": EVAL_ACC_PROTOTYPE, "images_per_s": IMAGES_PER_S}
Sort = Literal["newest", "oldest", "name", "status", "loss", "accuracy", "images_per_s"]


@dataclass(frozen=True)
class RunSummary:
    """A run with its latest step and numbers (None before it logs them) and, from its config, its length."""

    run: Run
    step: int
    loss: float | None
    accuracy: float | None  # held-out prototype accuracy, at the last evaluation
    images_per_s: float | None

    @property
    def episodes(self) -> int:
        return int(self.run.config.get("schedule", {}).get("episodes") or 0)

    @property
    def progress(self) -> float:
        return min(self.step / self.episodes, 1.0) if self.episodes else 0.0

    def eta(self, now: dt.datetime) -> dt.timedelta | None:
        """Time left at the pace so far (running runs that have logged a step)."""
        if self.run.status != "running" or not self.step or self.run.started_at is None or not self.episodes:
            return None
        elapsed = (now - self.run.started_at).total_seconds()
        return dt.timedelta(seconds=round(elapsed / self.step * max(self.episodes - self.step, 0)))


@dataclass(frozen=True)
class RunsPage:
    summaries: list[RunSummary]
    total: int  # runs matching the filters, on every page


class OverviewStore(Database):
    def runs_page(self, *, status: str | Sequence[str] | None = None, search: str | None = None,
                  owner: str | None = None, sort: Sort = "newest", limit: int = 50, offset: int = 0) -> RunsPage:
        """One page of runs (deleted ones left out unless asked for) with their latest loss, held-out accuracy
        and images/s; `search` matches name or preset; `owner` keeps one person's runs (None: everyone's). One
        query: each latest value is read from its key's last rollup by the (run, key, bucket) index, and the count
        of all matching runs rides along as a window."""
        latest = {name: _latest(key, MetricRollupRow.last_value) for name, key in SUMMARY_KEYS.items()}
        loss_step = _latest(SUMMARY_KEYS["loss"], MetricRollupRow.last_step)
        # The page's ids (and the count of all matching runs) first, touching only ids and the sort key; whole
        # rows and their numbers only for the page: the cost stays that of one page however many runs there are.
        page = (matching(select(RunRow.id, func.count().over().label("matching")), status, search, owner)
                .order_by(*_order(sort, latest)).limit(limit).offset(offset).subquery())
        query = (select(RunRow, page.c.matching, loss_step.label("loss_step"),
                        *(value.label(name) for name, value in latest.items()))
                 .join(page, page.c.id == RunRow.id).order_by(*_order(sort, latest)))
        with self._read() as session:
            rows = session.execute(query).all()
            summaries = [RunSummary(run_record(row.RunRow), int(row.loss_step or 0), row.loss, row.accuracy,
                                    row.images_per_s) for row in rows]
        return RunsPage(summaries, rows[0].matching if rows else self._count_matching(status, search, owner))

    def _count_matching(self, status: str | Sequence[str] | None, search: str | None, owner: str | None) -> int:
        """Past the last page no row carries the count: ask for it alone."""
        with self._read() as session:
            return session.scalar(matching(select(func.count()).select_from(RunRow), status, search, owner)) or 0


def _latest(key: str, column):
    """Per run row, `column` of `key`'s last rollup bucket: an index lookup per run, never a scan of the points."""
    return (select(column).where(MetricRollupRow.run_id == RunRow.id, MetricRollupRow.key == key)
            .order_by(MetricRollupRow.bucket.desc()).limit(1).correlate(RunRow).scalar_subquery())


def _order(sort: Sort, latest: dict) -> list:
    """Sort keys; runs without the value go last, and the id breaks ties so pages never overlap."""
    by_value = {"loss": (latest["loss"], False), "accuracy": (latest["accuracy"], True),
                "images_per_s": (latest["images_per_s"], True)}
    if sort in by_value:
        column, descending = by_value[sort]
        return [column.is_(None), column.desc() if descending else column.asc(), RunRow.id.desc()]
    by_field: dict[str, list[Any]] = {"newest": [RunRow.id.desc()], "oldest": [RunRow.id.asc()],
                                      "name": [func.lower(RunRow.name), RunRow.id.desc()],
                                      "status": [RunRow.status, RunRow.id.desc()]}
    return by_field[sort]
