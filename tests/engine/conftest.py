import subprocess
import sys
from pathlib import Path

import pytest

from lab_notes import Notebook
from tests.helpers import stop_processes

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def notebook(tmp_path):
    """A fresh SQLite notebook of the test's own (the worker and Slurm tests start real processes on it)."""
    notebook = Notebook(f"sqlite:///{tmp_path / 'notebook.db'}")
    yield notebook
    notebook.close()


@pytest.fixture
def start_worker(notebook, tmp_path):
    """Starts `python -m engine worker` on the test's notebook (with extra arguments); each is stopped at the end.
    Its output goes to `worker-N.log` in the test's folder: a pipe nobody reads would stall a talkative worker."""
    started: list[subprocess.Popen] = []

    def start(*extra: str) -> subprocess.Popen:
        with open(tmp_path / f"worker-{len(started) + 1}.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", notebook.url, "--runs-dir",
                                        str(tmp_path / "runs"), *extra], cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT)
        started.append(process)
        return process

    yield start
    stop_processes(started)
