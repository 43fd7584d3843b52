"""What a run leaves besides numbers: reconstruction images (PNG in the database) and checkpoint records (files
on disk). A run process writes both under its attempt, refused once the attempt no longer owns the run.

Files live under the artifact root, a folder every host of a team mounts (each maybe at its own path), and the
notebook records them relative to it: a run checkpointed on one host resumes on any other. Absolute paths,
which older notebooks hold, still mean what they meant."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import delete, select

from lab_notes.db import NotFound, as_utc, now
from lab_notes.images import check_image
from lab_notes.records import Attempt, Checkpoint
from lab_notes.rooms import Room
from lab_notes.runs import lease_lost
from lab_notes.schema import CheckpointRow, ImageRow


def artifact_root() -> Path:
    """Where checkpoints, run output logs and provenance diffs go on this host: $LAB_ARTIFACT_ROOT (the shared
    folder), else the older $LAB_RUNS_DIR, else ./runs."""
    return Path(os.environ.get("LAB_ARTIFACT_ROOT") or os.environ.get("LAB_RUNS_DIR") or "runs")


def path_to_record(path: str | Path, root: str | Path) -> str:
    """How the notebook records a file: relative to the artifact root when it lies under it (symlinks resolved,
    so a root reached through a link still counts), absolute otherwise."""
    real, real_root = Path(path).resolve(), Path(root).resolve()
    try:
        return real.relative_to(real_root).as_posix()
    except ValueError:
        return str(real)


def recorded_path_here(recorded: str | Path, root: str | Path) -> Path:
    """A recorded file as this host sees it: a relative path under this host's artifact root, an absolute one
    (an older notebook's) as it is."""
    recorded = Path(recorded)
    return recorded if recorded.is_absolute() else Path(root) / recorded


class ArtifactsStore(Room):
    """Needs the runs room's `ensure_attempt_owns_run` and the metrics room's `flush_buffered` (the Notebook has
    all three)."""

    # --- images -----------------------------------------------------------------------------------------------

    def log_image(self, run_id: int, key: str, step: int, png: bytes, *, attempt: Attempt | None = None) -> None:
        """Store a validated image (a later one at the same step replaces it)."""
        check_image(png, f"image {key!r} at step {step}")
        with self._write() as session:
            self.ensure_attempt_owns_run(session, attempt)
            session.execute(delete(ImageRow).where(ImageRow.run_id == run_id, ImageRow.key == key,
                                                   ImageRow.step == step))
            session.add(ImageRow(run_id=run_id, key=key, step=step, png=png))

    def image_keys(self, run_id: int) -> list[str]:
        with self._read() as session:
            return list(session.scalars(select(ImageRow.key).where(ImageRow.run_id == run_id).distinct()))

    def image_steps(self, run_id: int, key: str) -> list[int]:
        with self._read() as session:
            return list(session.scalars(select(ImageRow.step).where(ImageRow.run_id == run_id, ImageRow.key == key)
                                        .order_by(ImageRow.step)))

    def get_image(self, run_id: int, key: str, step: int) -> bytes:
        with self._read() as session:
            png = session.scalar(select(ImageRow.png).where(ImageRow.run_id == run_id, ImageRow.key == key,
                                                            ImageRow.step == step))
        if png is None:
            raise NotFound(f"no image {key!r} at step {step} of run {run_id}")
        return png

    # --- checkpoints ------------------------------------------------------------------------------------------

    def add_checkpoint(self, run_id: int, step: int, path: str, *, attempt: Attempt | None = None) -> None:
        """Record a checkpoint, in one transaction with every metric point still buffered: a resume from it
        discards what follows it and trains again from the next step, so all before it must be stored."""
        with self.flush_buffered(also=attempt) as (session, lost):
            assert session is not None  # always, without skip_when_empty
            if attempt is None or attempt not in lost:
                session.add(CheckpointRow(run_id=run_id, step=step, path=str(path), created_at=now()))
        if attempt is not None and attempt in lost:
            raise lease_lost(attempt)

    def checkpoints(self, run_id: int) -> list[Checkpoint]:
        with self._read() as session:
            rows = session.scalars(select(CheckpointRow).where(CheckpointRow.run_id == run_id)
                                   .order_by(CheckpointRow.step, CheckpointRow.id))
            return [Checkpoint(r.run_id, r.step, r.path, as_utc(r.created_at)) for r in rows]
