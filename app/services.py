"""The app's shared resources: one Notebook per server process; the other pages' imports, loaded once the first
page is drawn; whether this server may start a worker."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import streamlit as st

from app.identity import sign_in_is_on
from lab_notes import Notebook, apply_umask, artifact_root, default_url

apply_umask()  # also for a server started by hand (`streamlit run`), before the notebook file is made


@st.cache_resource
def open_notebook() -> Notebook:
    """The notebook at $LAB_NOTEBOOK_URL (else ./notebook.db), opened (and upgraded) once per server."""
    return Notebook(default_url())


# What the other pages import beyond what the home page does (pandas, through app.widgets, took 0.35 s here, cold)
PAGE_MODULES = ("app.widgets", "app.script_view", "app.live_chart", "app.pinning",
                "app.form", "app.script_form", "app.search_form", "app.search_page", "app.reproductions")


@st.cache_resource(show_spinner=False)
def other_pages_loaded() -> bool:
    """Once per server process, at the end of its first script run (the page is on screen by then): the other
    pages' modules, so that the first visit to a Run page, right after the first Launch, does not wait for them
    (it waited about a second: the first Launch took 3.6 s to its first point against 1.8 s for the second). In
    the script's own thread: on a thread of its own, the import of pandas once met a page's import of plotly
    half-way, and plotly found pandas without its `Series`."""
    for name in PAGE_MODULES:
        importlib.import_module(name)
    return True


def backup_folder() -> Path:
    """Where the app's Back-up button writes: $LAB_BACKUP_DIR (where the worker's daily backups go too), else
    the artifact root's backups/."""
    return Path(os.environ.get("LAB_BACKUP_DIR") or artifact_root() / "backups")


def may_start_worker() -> bool:
    """Only in single-user mode (with sign-in, workers run on their own hosts: `python -m engine worker`) and
    only under a Streamlit server: the app's script can also be imported elsewhere (a multiprocessing child
    re-imports `__main__`) and must not start workers there. $LAB_START_WORKER=0 turns it off (page tests)."""
    return st.runtime.exists() and os.environ.get("LAB_START_WORKER", "1") != "0" and not sign_in_is_on()


def run_id_from(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
