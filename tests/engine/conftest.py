import pytest

from lab_notes import Notebook


@pytest.fixture
def notebook(tmp_path):
    """A fresh SQLite notebook of the test's own (the worker and Slurm tests start real processes on it)."""
    notebook = Notebook(f"sqlite:///{tmp_path / 'notebook.db'}")
    yield notebook
    notebook.close()
