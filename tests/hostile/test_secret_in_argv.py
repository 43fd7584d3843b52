"""The database password never reaches a command line (`ps` shows every process's argv to every user of the
host): pg_dump and pg_restore get it in their environment, whether the URL carries it in its user part or as a
`?password=` query. Stand-in tools first on PATH record the argv and environment they were started with."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import make_url

from lab_notes import Notebook
from lab_notes.backup import _pg, backup, restore
from tests.helpers import fresh_postgres_database
from tests.lab_notes.conftest import PG_URL

URL_SECRET = "hunter2-in-the-url"
QUERY_SECRET = "hunter3-in-the-query"


def stand_in_tools(folder: Path, record: Path, *, then_run_the_real_one: bool) -> None:
    """`pg_dump` and `pg_restore` scripts in `folder` that append their argv and PGPASSWORD to `record`, then
    run the real tool with the same argv (or, with no real one, make the --file pg_dump was asked for)."""
    folder.mkdir(exist_ok=True)
    for tool in ("pg_dump", "pg_restore"):
        real = shutil.which(tool) if then_run_the_real_one else None
        script = folder / tool
        script.write_text(f"""#!{sys.executable}
import json, os, sys
with open({str(record)!r}, "a") as out:
    out.write(json.dumps({{"argv": sys.argv, "PGPASSWORD": os.environ.get("PGPASSWORD")}}) + "\\n")
real = {real!r}
if real:
    os.execv(real, [real, *sys.argv[1:]])
for arg in sys.argv[1:]:
    if arg.startswith("--file="):
        open(arg.split("=", 1)[1], "wb").close()
""")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)


def recorded(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_pg_tools_get_the_password_by_environment_never_in_argv(tmp_path, monkeypatch):
    record = tmp_path / "calls.jsonl"
    stand_in_tools(tmp_path / "bin", record, then_run_the_real_one=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    in_user_part = f"postgresql+psycopg://lab:{URL_SECRET}@db.example:5432/notebook?sslmode=disable"
    in_query = f"postgresql+psycopg://lab@db.example/notebook?password={QUERY_SECRET}&sslmode=disable"

    _pg(["pg_dump", "--format=custom", f"--file={tmp_path / 'a.dump'}"], in_user_part)
    _pg(["pg_restore", "--clean", "--dbname"], in_query, str(tmp_path / "a.dump"))

    dump, restore_call = recorded(record)
    for call, secret in ((dump, URL_SECRET), (restore_call, QUERY_SECRET)):
        command_line = " ".join(call["argv"])
        assert URL_SECRET not in command_line and QUERY_SECRET not in command_line, command_line
        assert not any("password=" in arg.lower() for arg in call["argv"][1:]), command_line
        assert call["PGPASSWORD"] == secret  # the tool still gets it
    # everything else of the URL is still there: user, host, port, database, other query settings
    assert "postgresql://lab@db.example:5432/notebook?sslmode=disable" in dump["argv"]
    assert "postgresql://lab@db.example/notebook?sslmode=disable" in restore_call["argv"]


@pytest.mark.skipif(not PG_URL, reason="PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL (as .ci/run does)")
def test_a_real_postgresql_backup_and_restore_work_with_the_password_only_in_the_environment(tmp_path,
                                                                                             monkeypatch):
    source, drop_source = fresh_postgres_database()
    target, drop_target = fresh_postgres_database()
    record = tmp_path / "calls.jsonl"
    stand_in_tools(tmp_path / "bin", record, then_run_the_real_one=True)
    try:
        with Notebook(source) as notebook:
            run_id = notebook.create_run({"k": 1}, name="password kept off argv")
        monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("PGPASSWORD", raising=False)
        made = backup(source, tmp_path / "notebook.dump")  # the password in the URL's user part
        parts = make_url(target)
        without = parts._replace(password=None).render_as_string(hide_password=False)
        as_query = without + ("&" if "?" in without else "?") + f"password={quote(parts.password)}"
        assert parts.password not in without  # the target's password is in the query alone
        restore(made.path, as_query)  # the password as a ?password= query
        with Notebook(target) as restored:
            assert restored.get_run(run_id).name == "password kept off argv"
        secret = make_url(source).password
        calls = recorded(record)
        assert [Path(c["argv"][0]).name for c in calls] == ["pg_dump", "pg_restore"]
        for call in calls:
            assert secret not in " ".join(call["argv"]) and call["PGPASSWORD"] == secret
        assert secret not in made.manifest.read_text()
    finally:
        drop_source()
        drop_target()
