"""A submission validates its config once and lints it once, from the New-run form and from the CLI: counters on
every place that validates (the schema's split check included) or lints."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import app.form
import engine.cli
import engine.config
import engine.jobs
from lab_notes import Notebook

APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")


@pytest.fixture
def counts(monkeypatch) -> collections.Counter:
    """Calls of validate_config, of the schema's split check (the costly part of validating) and of lint,
    wherever a submission reaches them."""
    counted: collections.Counter = collections.Counter()

    def counting(module, name: str, label: str) -> None:
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            counted[label] += 1
            return real(*args, **kwargs)
        monkeypatch.setattr(module, name, wrapper)

    counting(engine.config, "validate_config", "validate")
    counting(app.form, "validate_config", "validate")
    counting(engine.config, "_check_split", "split check")
    counting(app.form, "lint", "lint")
    counting(engine.jobs, "lint", "lint")
    counting(engine.cli, "lint", "lint")
    return counted


def test_launch_from_the_new_run_form_validates_and_lints_once(tmp_path, monkeypatch, counts):
    monkeypatch.setenv("LAB_NOTEBOOK_URL", f"sqlite:///{tmp_path / 'notebook.db'}")
    monkeypatch.setenv("LAB_START_WORKER", "0")
    import streamlit as st
    st.cache_resource.clear()
    page = AppTest.from_file(APP, default_timeout=60)
    page.run()
    page.switch_page("app_pages/new_run.py")
    page.run()
    counts.clear()
    next(b for b in page.button if b.label == "🚀 Launch").click().run()
    assert not page.exception, [e.value for e in page.exception]
    with Notebook(f"sqlite:///{tmp_path / 'notebook.db'}") as notebook:
        assert [r.status for r in notebook.list_runs()] == ["queued"], "the click queued one run"
    assert counts == {"validate": 1, "split check": 1, "lint": 1}
    st.cache_resource.clear()


def test_submit_from_the_cli_validates_and_lints_once(tmp_path, counts, capsys):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    assert engine.cli.main(["submit", "--preset", "tiny", "--set", "optim.lr=0.002", "--db", url]) == 0
    with Notebook(url) as notebook:
        assert len(notebook.list_runs()) == 1
    assert counts == {"validate": 1, "split check": 1, "lint": 1}
