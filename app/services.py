"""The app's shared resources: one Notebook per server process, and a background worker started once."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from engine.worker import ensure_worker
from lab_notes import Notebook
from lab_notes.store import default_url

RUNS_DIR = Path(os.environ.get("LAB_RUNS_DIR", "runs"))


@st.cache_resource
def notebook() -> Notebook:
    """The notebook at $LAB_NOTEBOOK_URL (else ./notebook.db), opened (and upgraded) once per server."""
    return Notebook(default_url())


@st.cache_resource
def worker_started() -> int | None:
    """Start a detached worker if no live one holds a lease. Only under a Streamlit server: the app's script can
    also be imported elsewhere (a multiprocessing child re-imports `__main__`) and must not start workers there.
    $LAB_START_WORKER=0 turns this off (page tests)."""
    if not st.runtime.exists() or os.environ.get("LAB_START_WORKER", "1") == "0":
        return None
    return ensure_worker(notebook().url, runs_dir=RUNS_DIR)


def run_id_from(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
