"""The sidebar's worker health: who is taking runs from the queue, and a way to start a worker when none is."""

from __future__ import annotations

import streamlit as st

from app.identity import sign_in_is_on
from app.literal import literal
from app.services import may_start_worker, open_notebook
from engine import jobs


@st.cache_resource(show_spinner=False)
def worker_started_with_the_app(url: str) -> int | None:
    """Once per server process, when the app starts (single-user mode): a worker and its warm launcher, so that
    torch is imported while a person reads the home page, not after their first Launch."""
    return jobs.ensure_worker(url, runs_dir=jobs.RUNS_DIR)


@st.fragment(run_every=5.0)
def worker_health() -> None:
    """Refreshed on its own every 5 s: a worker that dies shows up here without a page reload, and queued runs
    (a resume, a CLI submit) get a worker started for them."""
    notebook = open_notebook()
    if may_start_worker():
        worker_started_with_the_app(notebook.url)
        if jobs.worker_warming_up(jobs.RUNS_DIR):
            st.caption("🟡 Worker warming up (importing torch): a run launched now starts once it is ready…")
            return
    workers = jobs.live_workers(notebook)
    queued = notebook.runs_page(status="queued", limit=1).total  # counted by the database, never loaded
    if workers:
        slots = sum(w.max_parallel for w in workers)
        hosts = ", ".join(sorted({w.host for w in workers}))
        st.caption(f"🟢 {len(workers)} worker(s), {slots} slot(s) on {literal(hosts)}"
                   + (f" · {queued} queued" if queued else ""))
        return
    if queued and may_start_worker() and jobs.ensure_worker(notebook.url, runs_dir=jobs.RUNS_DIR):
        st.caption(f"🟡 Starting a worker for {queued} queued run(s)…")
        return
    # With sign-in the app starts no worker (it would run everyone's jobs as this server's user, on this host).
    hint = " Workers run on their own hosts: `python -m engine worker`." if sign_in_is_on() else ""
    st.caption("🔴 No live worker: queued runs wait." + (f" {queued} queued." if queued else "") + hint)
    if may_start_worker() and st.button("Start a worker", key="start_worker"):
        jobs.ensure_worker(notebook.url, runs_dir=jobs.RUNS_DIR)
        st.toast("Worker starting: it takes the queue within a few seconds.")
