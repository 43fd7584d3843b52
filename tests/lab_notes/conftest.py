"""A notebook on a temporary SQLite file, and the same against PostgreSQL when $LAB_NOTEBOOK_TEST_PG_URL names a
server (`.ci/run` starts one). Each PostgreSQL test gets a database of its own."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from lab_notes import Notebook

PG_URL = os.environ.get("LAB_NOTEBOOK_TEST_PG_URL")


def _postgres_database() -> tuple[str, callable]:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a restart
    name = f"notebook_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        # FORCE ends this role's leftover connections; a server process of another role (autovacuum, say) makes
        # it refuse for a moment: try again until it has gone.
        deadline = time.monotonic() + 30
        while True:
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except (ProgrammingError, OperationalError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        admin.dispose()

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def notebook_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notebook.db'}"
        return
    if not PG_URL:
        pytest.skip("PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL (as .ci/run does) to run the store tests against it")
    url, drop = _postgres_database()
    yield url
    drop()


@pytest.fixture
def notebook(notebook_url):
    book = Notebook(notebook_url)
    yield book
    book.close()
