"""One schema upgrade at a time: processes that open an empty notebook at the same moment (app servers and
workers starting together) wait for the first to upgrade it, then find it current."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from lab_notes.db import SCHEMA_LOCK_KEY, SchemaCheck
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
notebook = Notebook(url)
print(json.dumps({"found": notebook.schema.found, "head": notebook.schema.head, "runs": notebook.runs_page().total}))
notebook.close()
"""


def test_processes_opening_an_empty_notebook_at_once_upgrade_it_once(notebook_url, tmp_path):
    processes = [subprocess.Popen([sys.executable, "-c", OPEN_ON_GO, notebook_url, str(tmp_path / f"ready-{i}"),
                                   str(tmp_path / "go")], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(OPENERS)]
    try:
        def all_ready() -> bool:
            for i, process in enumerate(processes):
                if process.poll() is not None and not (tmp_path / f"ready-{i}").exists():
                    raise AssertionError(f"opener {i} ended before it was ready: {process.stderr.read()}")
            return all((tmp_path / f"ready-{i}").exists() for i in range(OPENERS))

        wait_for(all_ready, 120, "every process to import the notebook")
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


OPEN = """
import sys
from lab_notes import Notebook
notebook = Notebook(sys.argv[1])
print(notebook.schema.found, notebook.schema.head)
notebook.close()
"""


def test_an_opener_waits_while_another_process_holds_the_upgrade_lock(notebook_url, tmp_path):
    """Deterministic: the test holds the lock itself, sees the opener blocked on it (the kernel's or the server's
    own list of waiting locks), checks that it has changed nothing, lets go, and the opener upgrades."""
    engine = create_engine(notebook_url, isolation_level="AUTOCOMMIT")
    if notebook_url.startswith("sqlite"):
        lock_file = open(notebook_url.removeprefix("sqlite:///") + ".lock", "a")
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        inode = f":{os.fstat(lock_file.fileno()).st_ino} "

        def waiting() -> bool:  # a blocked request is listed under the lock it waits for, marked "->"
            return any(" -> " in line and inode in line for line in Path("/proc/locks").read_text().splitlines())

        release = lock_file.close
    else:
        holder = engine.connect()
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})

        def waiting() -> bool:
            with engine.connect() as connection:
                return bool(connection.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalar())

        def release() -> None:
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SCHEMA_LOCK_KEY})
            holder.close()
    opener = subprocess.Popen([sys.executable, "-c", OPEN, notebook_url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(waiting, 60, "the opener to wait for the upgrade lock")
        assert opener.poll() is None and "alembic_version" not in inspect(engine).get_table_names()
    finally:
        release()
    out, err = opener.communicate(timeout=60)
    assert opener.returncode == 0, err
    assert out.split()[0] == "None" and "notebook schema upgraded empty →" in err
    engine.dispose()
