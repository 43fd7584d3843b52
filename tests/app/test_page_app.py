"""The app as a whole: what its pages import, and when it starts a worker.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import streamlit as st

from engine.presets import PRESETS
from tests.app.conftest import ROOT, seeded_run


def test_pages_never_import_torch(notebook, tmp_path):
    """Each page module, run in a fresh interpreter (Streamlit's bare mode), leaves torch out of sys.modules."""
    seeded_run(notebook, name="a")
    seeded_run(notebook, name="b")
    sweep = notebook.create_sweep(name="s", preset="tiny", mode="grid", fields={"optim.lr": [0.1]},
                              runs=[("s [lr=0.1]", PRESETS["tiny"].model_dump(mode="json"), [])])
    notebook.log_metrics(notebook.get_sweep(sweep).run_ids[0], 1, {"loss/total": 1.0})
    notebook.flush()  # bare mode ignores st.stop: every page must find something to draw
    pages = sorted(str(p) for p in (ROOT / "app" / "app_pages").glob("*.py"))
    code = ("import runpy, sys; sys.path.insert(0, '.'); "
            f"[runpy.run_path(page) for page in {pages!r}]; print('torch' in sys.modules)")
    env = {**os.environ, "LAB_NOTEBOOK_URL": notebook.url, "LAB_START_WORKER": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_the_app_starts_no_worker_outside_a_streamlit_server(monkeypatch):
    """Importing the app script elsewhere (a multiprocessing child re-imports __main__) must not spawn workers."""
    from app.services import may_start_worker

    monkeypatch.delenv("LAB_START_WORKER", raising=False)
    assert not st.runtime.exists() and may_start_worker() is False


def app_modules_imported_by(path) -> set[str]:
    tree = ast.parse(path.read_text())
    return ({node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
            | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names})


def test_what_the_other_pages_import_loads_once_the_first_page_is_drawn():
    """The first visit to a Run page (right after the first Launch) waited for pandas and the run page's modules;
    the first script run of a server now loads them after drawing its page. A page that imports a module of the
    app the home page does not must be listed there, or the first visit to it waits again."""
    from app.services import PAGE_MODULES

    pages = ROOT / "app" / "app_pages"
    first = app_modules_imported_by(ROOT / "app" / "streamlit_app.py") | app_modules_imported_by(pages / "home.py")
    others = set().union(*(app_modules_imported_by(page) for page in pages.glob("*.py") if page.name != "home.py"))
    waited_for = {name for name in others - first if name.startswith("app.")}
    assert waited_for <= set(PAGE_MODULES), f"not loaded ahead: {sorted(waited_for - set(PAGE_MODULES))}"
    assert set(PAGE_MODULES) <= others, "loaded ahead, but no page imports it"
