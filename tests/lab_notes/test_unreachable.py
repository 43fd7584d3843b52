"""A database the notebook cannot reach surfaces as the notebook's own `Unreachable`, which the worker catches
(it names no SQLAlchemy exception of its own)."""

from pathlib import Path

import pytest
from sqlalchemy import create_engine

import lab_notes
from lab_notes import Notebook

ROOT = Path(__file__).resolve().parents[2]


def test_a_database_that_cannot_be_reached_is_unreachable_for_reads_and_writes(tmp_path):
    notebook = Notebook(f"sqlite:///{tmp_path / 'notebook.db'}")
    notebook.dispose()
    # Nothing listens on port 9 here: every connection is refused at once, as when the server is down.
    notebook._writer = notebook._reader = create_engine("postgresql+psycopg://nobody@127.0.0.1:9/nothing",
                                                        connect_args={"connect_timeout": 5})
    with pytest.raises(lab_notes.Unreachable) as read:
        notebook.list_runs()
    with pytest.raises(lab_notes.Unreachable) as write:
        notebook.heartbeat_worker("worker-1")
    assert "refused" in str(read.value.orig).lower() or "connect" in str(read.value.orig).lower()
    assert write.value.orig is not None
    notebook._closed.set()  # nothing buffered; closing would only try the unreachable database again


def test_the_worker_catches_the_notebooks_exception_not_sqlalchemys():
    source = (ROOT / "engine" / "worker.py").read_text()
    assert "sqlalchemy" not in source
    assert "except Unreachable" in source
