"""The app's shared resources: one Notebook per server process; whether this server may start a worker."""

from __future__ import annotations

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
