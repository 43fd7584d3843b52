"""A notebook on a temporary SQLite file, and the same against PostgreSQL when $LAB_NOTEBOOK_TEST_PG_URL names a
server (`.ci/run` starts one). Each PostgreSQL test gets a database of its own."""

from __future__ import annotations

import os

import pytest

from lab_notes import Notebook
from tests.helpers import fresh_postgres_database, missing_service

PG_URL = os.environ.get("LAB_NOTEBOOK_TEST_PG_URL")




@pytest.fixture(params=["sqlite", "postgresql"])
def notebook_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'notebook.db'}"
        return
    if not PG_URL:
        missing_service("PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL (as .ci/run does) to run the store tests against it")
    url, drop = fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def notebook(notebook_url):
    notebook = Notebook(notebook_url)
    yield notebook
    notebook.close()
