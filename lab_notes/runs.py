"""Runs and their life: the one module that changes a run's status (DESIGN §5).

Every change is a compare-and-set (`UPDATE runs … WHERE id = ? AND status IN (…) [AND attempt_token = ?]`) in one
transaction together with what belongs to it. A change that is not allowed, or that lost a race, is refused with a
message saying what the run is now; nothing is ever overwritten silently. A run process writes under its
`Attempt`; once the run has moved on (reaped, stopped, resumed, deleted) the old attempt's writes are refused.
Leases and heartbeats use the database's clock."""

from __future__ import annotations

import uuid
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, Select, and_, delete, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from lab_notes.db import NotFound, as_utc, get_row, now, rowcount
from lab_notes.records import FINAL_STATUSES, RESUMABLE_STATUSES, Attempt, Run, Worker
from lab_notes.rooms import Room
from lab_notes.schema import (CheckpointRow, ImageRow, MetricRollupRow, MetricRow, RunRow, SnapshotRow,
                              WorkerRow)

LOG_TAIL_CHARS = 20_000

# target status -> the statuses it may come from. (new) -> queued is `create_run`.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "running": ("queued",),                                 # a worker's claim: a new attempt
    "stopped": ("queued", "running"),                       # stop before it started; or the run's own attempt
    "completed": ("running",),                              # the run's own attempt
    "diverged": ("running",),                               # the run's own attempt, with report and note
    "failed": ("running",),                                 # own attempt, its worker, or the stale-lease reaper
    "queued": RESUMABLE_STATUSES,                           # resume
    "deleted": ("queued", *FINAL_STATUSES),                 # delete: anything but running
}
WHAT_MOVES_THERE = {"running": "claim", "stopped": "stop", "completed": "complete", "diverged": "end as diverged",
                    "failed": "fail", "queued": "resume", "deleted": "delete"}


class Refused(ValueError):
    """A lifecycle change that the run's current state does not allow (or that lost a race)."""


class LeaseLost(RuntimeError):
    """This attempt no longer owns its run: its writes are refused and its process should stop."""


def lease_lost(attempt: Attempt) -> LeaseLost:
    return LeaseLost(f"run {attempt.run_id}: attempt {attempt.number} no longer owns the run")


class RunsStore(Room):
    # --- reading ---------------------------------------------------------------------------------------------

    def get_run(self, run_id: int) -> Run:
        with self._read() as session:
            return run_record(get_row(session, RunRow, run_id))

    def run_names(self) -> dict[int, str]:
        """id -> name of every run but the deleted, newest first: for pickers, without loading whole runs."""
        with self._read() as session:
            rows = session.execute(select(RunRow.id, RunRow.name).where(RunRow.status != "deleted")
                                   .order_by(RunRow.id.desc()))
            return {run_id: name for run_id, name in rows}

    def list_runs(self, status: str | Sequence[str] | None = None, search: str | None = None, *,
                  owner: str | None = None) -> list[Run]:
        """Newest first, deleted runs left out unless asked for; `search` matches name or preset, any case;
        `owner` keeps only the runs that person made (None: everyone's)."""
        query = matching(select(RunRow).order_by(RunRow.id.desc()), status, search, owner)
        with self._read() as session:
            return [run_record(row) for row in session.scalars(query)]

    def stop_requested(self, run_id: int) -> bool:
        with self._read() as session:
            return bool(session.scalar(select(RunRow.stop_requested).where(RunRow.id == run_id)))

    # --- the lifecycle ---------------------------------------------------------------------------------------

    def create_run(self, config: dict[str, Any], *, name: str, preset: str | None = None,
                   parent_id: int | None = None, lint: Sequence[Any] = (), owner: str | None = None,
                   pinned_host: str | None = None, pinned_gpu: str | None = None) -> int:
        """(new) -> queued, made by `owner` (None: the local user), for any worker unless pinned to a host or a
        GPU kind. Ids are never reused: a deleted run keeps its row, as `deleted`."""
        with self._write() as session:
            row = queued_run_row(name=name, preset=preset, config=config, lint=lint, owner=owner,
                                 pinned_host=pinned_host, pinned_gpu=pinned_gpu, parent_id=parent_id)
            session.add(row)
            session.flush()
            return row.id

    def create_running_run(self, config: dict[str, Any], *, name: str, worker_id: str, pid: int,
                           owner: str | None = None) -> Attempt:
        """(new) -> queued -> running in one transaction, as attempt 1 of the calling process (a script's tracking
        client runs its run itself): no worker ever sees it queued."""
        with self._write() as session:
            row = queued_run_row(name=name, preset=None, config=config, lint=(), owner=owner, pinned_host=None,
                                 pinned_gpu=None)
            session.add(row)
            session.flush()
            attempt, clock = Attempt(row.id, 1, uuid.uuid4().hex), self._clock()
            self._change_status(session, row.id, "running", attempt=1, attempt_token=attempt.token, pid=pid,
                                worker_id=worker_id, started_at=clock, heartbeat_at=clock)
            return attempt

    def claim_next_run(self, worker_id: str, *, host: str | None = None, gpus: Sequence[str] = ()) -> Attempt | None:
        """queued -> running for the oldest queued run that this worker may run, as a new attempt of it; None
        when there is none. A run pinned to a host goes only to a worker of that `host` id; one pinned to a GPU
        kind only to a worker with a GPU whose name contains it, any case ("H100" is in "NVIDIA H100 80GB HBM3")."""
        query = (select(RunRow.id, RunRow.attempt)
                 .where(RunRow.status == "queued", self._may_run_here(host, gpus))
                 .order_by(RunRow.id).limit(1))
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)  # SQLite: BEGIN IMMEDIATE already serialises this
        with self._write() as session:
            found = session.execute(query).first()
            if found is None:
                return None
            attempt = Attempt(found.id, found.attempt + 1, uuid.uuid4().hex)
            clock = self._clock()
            moved = self._change_status(session, attempt.run_id, "running", attempt=attempt.number,
                                        attempt_token=attempt.token, worker_id=worker_id, pid=None,
                                        started_at=clock, heartbeat_at=clock, ended_at=None, stop_requested=False,
                                        status_reason=None, exit_code=None)
            return attempt if moved else None

    def _may_run_here(self, host: str | None, gpus: Sequence[str]) -> ColumnElement:
        """Runs a worker of `host` with `gpus` may take: unpinned, or pinned to what it has. The GPU kind is
        matched as a plain substring (instr / strpos: no LIKE, so a "_" or "%" in a kind means itself)."""
        position = func.instr if self.dialect == "sqlite" else func.strpos
        host_fits: ColumnElement[bool] = RunRow.pinned_host.is_(None)
        if host is not None:
            host_fits = or_(host_fits, RunRow.pinned_host == host)
        gpu_fits = or_(RunRow.pinned_gpu.is_(None),
                       *[position(literal(name.lower()), func.lower(RunRow.pinned_gpu)) > 0 for name in gpus])
        return and_(host_fits, gpu_fits)

    def request_stop(self, run_id: int, reason: str | None = None) -> str:
        """queued -> stopped while still queued; otherwise a stop request to the running attempt, which stops at
        its next step with a checkpoint, ending with `reason` (a search's "pruned at step S") when given.
        Returns "stopped" or "stop requested"; refuses any other state."""
        with self._write() as session:
            if self._change_status(session, run_id, "stopped", sources=("queued",),
                                   status_reason=reason or "stopped before it started", ended_at=self._clock()):
                return "stopped"
            asked = session.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "running")
                                    .values(stop_requested=True, **({"status_reason": reason} if reason else {})))
            if rowcount(asked):
                return "stop requested"
            raise self._refusal(session, run_id, "stopped")

    def request_stop_of_attempt(self, attempt: Attempt) -> bool:
        """A stop request to this attempt only (a worker shutting down asks its own runs, not a newer attempt of
        one of them that another worker took meanwhile); False when the run is no longer this attempt's."""
        with self._write() as session:
            return rowcount(session.execute(self._fenced(attempt).values(stop_requested=True))) == 1

    def finish_attempt(self, attempt: Attempt, status: str, *, reason: str | None = None,
                       report: dict[str, Any] | None = None, exit_code: int | None = None,
                       note: tuple[str, str] | None = None) -> None:
        """running -> completed | stopped | diverged | failed by `attempt`, in one transaction with the final
        flush of buffered metrics, the divergence report and (title, body) of a dated journal note: a reader sees
        all of it or none of it. Raises LeaseLost when the run no longer belongs to this attempt."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run ends as one of {FINAL_STATUSES}, not {status!r}")
        with self.flush_buffered(also=attempt) as (session, lost):
            assert session is not None  # always, without skip_when_empty
            if attempt not in lost:
                # a run that obeys a stop request keeps the reason it was asked with (a pruner's)
                kept = RunRow.status_reason if status == "stopped" and reason is None else reason
                values: dict[str, Any] = {"status_reason": kept, "ended_at": self._clock()}
                if report is not None:
                    values["divergence_report"] = report
                if exit_code is not None:
                    values["exit_code"] = exit_code
                if not self._change_status(session, attempt.run_id, status, attempt=attempt, **values):
                    lost.add(attempt)
                elif note:
                    self._insert_note(session, now().date(), note[0], note[1], run_ids=[attempt.run_id],
                                      figures=(), tags=["divergence"])
        if attempt in lost:
            raise lease_lost(attempt)

    def fail_stale_attempts(self, stale_after: float) -> list[int]:
        """running -> failed for every run whose attempt has not heartbeat for `stale_after` seconds of the
        database's clock (its process, or its host, is gone); their ids. Workers' stale leases go too."""
        cutoff = self._clock(-stale_after)
        with self._write() as session:
            stale = session.execute(select(RunRow.id, RunRow.attempt, RunRow.attempt_token, RunRow.worker_id)
                                    .where(RunRow.status == "running", RunRow.heartbeat_at < cutoff)).all()
            failed = []
            for run_id, number, token, worker in stale:
                reason = (f"heartbeat stale: no sign of life for over {stale_after:g} s (attempt {number}, "
                          f"worker {worker}): its process or host is gone")
                if self._change_status(session, run_id, "failed", attempt=Attempt(run_id, number, token or ""),
                                       status_reason=reason, ended_at=self._clock()):
                    failed.append(run_id)
            session.execute(delete(WorkerRow).where(WorkerRow.heartbeat_at < cutoff))
            return failed

    def resume(self, run_id: int, from_step: int) -> None:
        """stopped | failed | diverged -> queued, discarding every metric, image and checkpoint record after
        `from_step` (all of them when 0: no checkpoint), so each step is stored once when it trains again."""
        self.flush()
        with self._write() as session:
            if not self._change_status(session, run_id, "queued", status_reason=None, stop_requested=False,
                                       exit_code=None, divergence_report=None, ended_at=None, pid=None):
                raise self._refusal(session, run_id, "queued")
            self._discard_after(session.connection(), run_id, from_step)
            session.execute(delete(CheckpointRow).where(CheckpointRow.run_id == run_id,
                                                        CheckpointRow.step > from_step))

    def hand_over(self, attempt: Attempt, from_step: int) -> Attempt:
        """running -> running as the next attempt, for a job its scheduler requeues (a Slurm time limit): the new
        attempt continues from `from_step` (its newest checkpoint), what was logged after it is discarded, and
        from now on `attempt`'s writes are refused. Raises LeaseLost when the run is no longer `attempt`'s."""
        handed = Attempt(attempt.run_id, attempt.number + 1, uuid.uuid4().hex)
        with self._write() as session:
            if rowcount(session.execute(self._fenced(attempt).values(
                    attempt=handed.number, attempt_token=handed.token, heartbeat_at=self._clock(), pid=None)
                               )) != 1:
                raise lease_lost(attempt)
            self._discard_after(session.connection(), attempt.run_id, from_step)
            session.execute(delete(CheckpointRow).where(CheckpointRow.run_id == attempt.run_id,
                                                        CheckpointRow.step > from_step))
        return handed

    def current_attempt(self, run_id: int, worker_id: str) -> Attempt | None:
        """The running attempt of `run_id` when `worker_id` holds it (after a hand-over, the worker follows its
        job's new attempt); None otherwise."""
        with self._read() as session:
            row = session.execute(select(RunRow.attempt, RunRow.attempt_token).where(
                RunRow.id == run_id, RunRow.status == "running", RunRow.worker_id == worker_id)).first()
        return None if row is None else Attempt(run_id, row.attempt, row.attempt_token)

    def delete_run(self, run_id: int) -> None:
        """anything but running -> deleted, with its metrics, images and checkpoint records. The row stays (name,
        config, notes' links), so its id is never given to another run. Its files are the caller's to remove."""
        self.flush()
        with self._write() as session:
            if not self._change_status(session, run_id, "deleted", stop_requested=False, log_tail="",
                                       ended_at=func.coalesce(RunRow.ended_at, self._clock())):
                raise self._refusal(session, run_id, "deleted")
            for table in (MetricRow, MetricRollupRow, ImageRow, SnapshotRow, CheckpointRow):
                session.execute(delete(table).where(table.run_id == run_id))

    def _change_status(self, session: Session, run_id: int, to: str, *, sources: Sequence[str] | None = None,
              attempt: Attempt | int | None = None, **values: Any) -> bool:
        """The compare-and-set every status change goes through; False when the run was not in a state (or not
        on the attempt) that allows it. An `Attempt` fences on its token; a bare int sets the attempt number."""
        allowed = TRANSITIONS[to] if sources is None else tuple(s for s in sources if s in TRANSITIONS[to])
        query = update(RunRow).where(RunRow.id == run_id, RunRow.status.in_(allowed))
        if isinstance(attempt, Attempt):  # only a running attempt acts, and only on its own run
            query = query.where(RunRow.status == "running", RunRow.attempt == attempt.number,
                                RunRow.attempt_token == attempt.token)
        elif attempt is not None:
            values["attempt"] = attempt
        if to != "running":
            values["attempt_token"] = None  # a token is good only while its attempt runs
        return rowcount(session.execute(query.values(status=to, **values))) == 1

    def _refusal(self, session: Session, run_id: int, to: str) -> Exception:
        status = session.scalar(select(RunRow.status).where(RunRow.id == run_id))
        if status is None:
            return NotFound(f"no run {run_id}")
        action = WHAT_MOVES_THERE[to]
        hint = {"deleted": "stop it first: a running run cannot be deleted",
                "queued": f"only a {', '.join(TRANSITIONS['queued'])} run can be resumed",
                "stopped": "only a queued or running run can be stopped"}.get(to, "")
        return Refused(f"run {run_id} is {status}: cannot {action} it" + (f"; {hint}" if hint else ""))

    # --- what a running attempt writes (each fenced by its token) -------------------------------------------

    def heartbeat(self, attempt: Attempt) -> bool:
        """The attempt's lease, renewed on the database's clock; False when the run no longer belongs to it."""
        with self._write() as session:
            return rowcount(session.execute(self._fenced(attempt).values(heartbeat_at=self._clock()))) == 1

    def set_pid(self, attempt: Attempt, pid: int) -> None:
        """The attempt's process started: its pid, and a sign of life (starting it may have taken a while, and
        the process heartbeats by itself only once it has connected)."""
        self._fenced_update(attempt, pid=pid, heartbeat_at=self._clock())

    def set_device(self, attempt: Attempt, device: str) -> None:
        self._fenced_update(attempt, device=device)

    def add_divergence_incident(self, attempt: Attempt, incident: dict[str, Any]) -> None:
        """Append one incident to the run's divergence report (a skip or rollback that the run survived)."""
        with self._write() as session:
            report = session.scalar(select(RunRow.divergence_report).where(RunRow.id == attempt.run_id))
            report = dict(report or {"incidents": []})
            report["incidents"] = [*report.get("incidents", []), incident]
            if rowcount(session.execute(self._fenced(attempt).values(divergence_report=report))) != 1:
                raise lease_lost(attempt)

    def record_exit(self, attempt: Attempt, exit_code: int) -> None:
        """The exit code of the attempt's process, whatever status the run reached."""
        with self._write() as session:
            session.execute(update(RunRow).where(RunRow.id == attempt.run_id, RunRow.attempt == attempt.number)
                            .values(exit_code=exit_code))

    def append_log(self, run_id: int, text_: str) -> None:
        """Keep the last LOG_TAIL_CHARS characters of a run's output (nothing is kept for a deleted run)."""
        with self._write() as session:
            row = get_row(session, RunRow, run_id)
            if row.status != "deleted":
                row.log_tail = (row.log_tail + text_)[-LOG_TAIL_CHARS:]

    def _fenced(self, attempt: Attempt):
        return update(RunRow).where(RunRow.id == attempt.run_id, RunRow.attempt == attempt.number,
                                    RunRow.attempt_token == attempt.token, RunRow.status == "running")

    def _fenced_update(self, attempt: Attempt, **values: Any) -> None:
        with self._write() as session:
            if rowcount(session.execute(self._fenced(attempt).values(**values))) != 1:
                raise lease_lost(attempt)

    def ensure_attempt_owns_run(self, session: Session, attempt: Attempt | None) -> None:
        """Inside a write: LeaseLost unless `attempt` (when given) still owns its run."""
        if attempt is not None and self.leases_lost_within(session.connection(), [attempt]):
            raise lease_lost(attempt)

    def leases_lost_within(self, connection: Connection, attempts: Iterable[Attempt]) -> set[Attempt]:
        """Which of `attempts` no longer own their run, checked inside the caller's write transaction (on
        PostgreSQL the run rows stay share-locked until it commits, so a reap waits for these writes)."""
        lost = set()
        for attempt in set(attempts):
            query = select(RunRow.id).where(RunRow.id == attempt.run_id, RunRow.attempt == attempt.number,
                                            RunRow.attempt_token == attempt.token, RunRow.status == "running")
            if self.dialect == "postgresql":
                query = query.with_for_update(read=True)
            if connection.execute(query).first() is None:
                lost.add(attempt)
        return lost

    # --- workers' leases ------------------------------------------------------------------------------------

    def register_worker(self, worker_id: str, *, host: str, pid: int, max_parallel: int,
                        gpus: Sequence[str] = (), cpu_slots: int | None = None) -> None:
        """A worker's lease, with its host id and what it offers: the names of its GPUs, its CPU slots."""
        with self._write() as session:
            session.add(WorkerRow(id=worker_id, host=host, pid=pid, max_parallel=max_parallel, gpus=list(gpus),
                                  cpu_slots=cpu_slots, started_at=self._clock(), heartbeat_at=self._clock()))

    def heartbeat_worker(self, worker_id: str) -> bool:
        """Renew a worker's lease; False when it has none (a sweep took it while the worker was paused)."""
        with self._write() as session:
            return rowcount(session.execute(update(WorkerRow).where(WorkerRow.id == worker_id)
                                            .values(heartbeat_at=self._clock()))) == 1

    def retire_worker(self, worker_id: str) -> None:
        with self._write() as session:
            session.execute(delete(WorkerRow).where(WorkerRow.id == worker_id))

    def live_workers(self, stale_after: float) -> list[Worker]:
        """Workers whose lease is younger than `stale_after` seconds by the database's clock."""
        with self._read() as session:
            rows = session.scalars(select(WorkerRow).where(WorkerRow.heartbeat_at >= self._clock(-stale_after))
                                   .order_by(WorkerRow.id))
            return [Worker(r.id, r.host, r.pid, r.max_parallel, as_utc(r.started_at), as_utc(r.heartbeat_at),
                           tuple(r.gpus or ()), r.cpu_slots) for r in rows]


def matching(query: Select, status: str | Sequence[str] | None, search: str | None,
             owner: str | None = None) -> Select:
    """`query` narrowed to runs in `status` (any but deleted when None) whose name or preset contains `search`,
    made by `owner` when given (None: anyone's)."""
    if status:
        query = query.where(RunRow.status.in_([status] if isinstance(status, str) else list(status)))
    else:
        query = query.where(RunRow.status != "deleted")
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(or_(func.lower(RunRow.name).like(pattern),
                                func.lower(func.coalesce(RunRow.preset, "")).like(pattern)))
    if owner is not None:
        query = query.where(RunRow.owner == owner)
    return query


def queued_run_row(*, name: str, preset: str | None, config: dict[str, Any], lint: Sequence[Any],
                   owner: str | None, pinned_host: str | None, pinned_gpu: str | None, parent_id: int | None = None,
                   sweep_id: int | None = None) -> RunRow:
    """A new run as it enters the lifecycle, (new) -> queued: the one place its first row is built (a single
    run, or each run of a sweep)."""
    return RunRow(name=name, preset=preset, config=config, parent_id=parent_id, sweep_id=sweep_id, status="queued",
                  created_at=now(), stop_requested=False, lint=list(lint), log_tail="", attempt=0, owner=owner,
                  pinned_host=pinned_host, pinned_gpu=pinned_gpu)


def run_record(row: RunRow) -> Run:
    """A run row as the record every room returns (never the ORM row itself)."""
    return Run(row.id, row.name, row.preset, row.config, row.parent_id, row.status, row.status_reason,
               as_utc(row.created_at), as_utc(row.started_at), as_utc(row.ended_at), as_utc(row.heartbeat_at),
               bool(row.stop_requested), row.device, row.exit_code, list(row.lint or []), row.divergence_report,
               row.log_tail or "", row.worker_id, row.pid, row.attempt or 0, row.sweep_id,
               row.owner, row.pinned_host, row.pinned_gpu)
