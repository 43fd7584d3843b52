"""A team's notebook: two app servers started together on one empty PostgreSQL database. Both open the notebook
when their first page loads, at the same moment; one upgrades the schema, the other waits for it, and both serve."""

from __future__ import annotations

import os
import subprocess
import sys

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from lab_notes.db import MIGRATIONS
from tests.e2e.conftest import ROOT, free_port
from tests.helpers import server_is_healthy, stop_processes, wait_for

def test_two_app_servers_on_an_empty_database_upgrade_it_once_and_both_serve(empty_postgres_url, browser,
                                                                             tmp_path):
    url = empty_postgres_url
    env = {**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_START_WORKER": "0", "LAB_RUNS_DIR": str(tmp_path / "runs")}
    servers, ports = [], [free_port(), free_port()]
    try:
        for port in ports:
            with open(tmp_path / f"streamlit-{port}.log", "wb") as log:
                servers.append(subprocess.Popen(
                    [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "streamlit_app.py"),
                     "--server.port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        wait_for(lambda: all(server_is_healthy(port) for port in ports), 90, "both servers' health endpoints")
        engine = create_engine(url)
        assert inspect(engine).get_table_names() == []  # nothing opened the notebook yet: the pages will

        contexts = [browser.new_context() for _ in ports]
        try:
            pages = [context.new_page() for context in contexts]
            for page, port in zip(pages, ports):  # both requested before either draws: they open it together
                page.goto(f"http://127.0.0.1:{port}/", wait_until="commit")
            for page in pages:
                page.get_by_role("heading", name="Lab notebook").wait_for(timeout=60_000)
                page.get_by_text("No runs yet").wait_for(timeout=30_000)  # the Home page, read from the notebook
        finally:
            for context in contexts:
                context.close()

        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        engine.dispose()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(config).get_current_head()
        assert version == [head]
        logs = [(tmp_path / f"streamlit-{port}.log").read_text() for port in ports]
        upgraded = [log for log in logs if f"notebook schema upgraded empty → {head}" in log]
        assert len(upgraded) == 1, logs  # exactly one server did the upgrade
        assert all("Traceback" not in log for log in logs), logs
    finally:
        stop_processes(servers, timeout=30)
