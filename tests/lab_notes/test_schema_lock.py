"""One schema upgrade at a time: processes that open an empty notebook at the same moment (app servers and
workers starting together) wait for the first to upgrade it, then find it current."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text

from lab_notes.db import SchemaCheck
from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]
OPENERS = 4
# Each process imports the notebook first (the slow part), says it is ready, then waits for the go file: they all
# open the notebook within a few milliseconds of each other.
OPEN_ON_GO = """
import json, sys, time
from pathlib import Path
from lab_notes import Notebook
url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
book = Notebook(url)
print(json.dumps({"found": book.schema.found, "head": book.schema.head, "runs": book.runs_page().total}))
book.close()
"""


def test_processes_opening_an_empty_notebook_at_once_upgrade_it_once(notebook_url, tmp_path):
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_ON_GO, notebook_url, str(tmp_path / f"ready-{i}"),
                                   str(tmp_path / "go")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(OPENERS)]
    try:
        wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(OPENERS)), 120,
                 "every process to import the notebook")
        (tmp_path / "go").touch()
        outputs = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0] * OPENERS, [err for _, err in outputs]
    checks = [SchemaCheck(**{k: json.loads(out)[k] for k in ("found", "head")}) for out, _ in outputs]
    head = checks[0].head
    assert sum(check.upgraded for check in checks) == 1  # one upgraded from empty; the others waited and found it
    assert sorted(str(check.found) for check in checks) == sorted([head] * (OPENERS - 1) + ["None"])
    said = [err for _, err in outputs if f"notebook schema upgraded empty → {head}" in err]
    assert len(said) == 1, [err for _, err in outputs]
    engine = create_engine(notebook_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    engine.dispose()
