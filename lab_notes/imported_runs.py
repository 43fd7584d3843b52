"""A run that starts running the moment it is made, with no worker: what an import (TensorBoard logs) writes
under. It enters the lifecycle as every run does (queued) and is claimed in the same transaction, so no worker can
take it meanwhile; it then ends as any attempt does (`finish_attempt`)."""

from __future__ import annotations

import uuid
from typing import Any

from lab_notes.records import Attempt
from lab_notes.runs import queued_run_row
from lab_notes.store import Notebook

IMPORT_WORKER = "import"


def start_imported_run(notebook: Notebook, config: dict[str, Any], *, name: str, preset: str | None,
                       owner: str | None = None) -> Attempt:
    """(new) -> queued -> running at once, as attempt 1 held by this process; returns that attempt."""
    with notebook._write() as session:
        row = queued_run_row(name=name, preset=preset, config=config, lint=(), owner=owner, pinned_host=None,
                             pinned_gpu=None)
        session.add(row)
        session.flush()
        attempt = Attempt(row.id, 1, uuid.uuid4().hex)
        clock = notebook._clock()
        notebook._change_status(session, row.id, "running", attempt=1, attempt_token=attempt.token,
                            worker_id=IMPORT_WORKER, started_at=clock, heartbeat_at=clock, stop_requested=False)
    return attempt
