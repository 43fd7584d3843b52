"""Hostile-input tests run against the same notebooks as the store tests: SQLite, and PostgreSQL under CI."""

from tests.lab_notes.conftest import notebook, notebook_url  # noqa: F401 - fixtures
