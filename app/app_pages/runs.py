"""Runs: every run with its status and latest numbers; filter, open, compare, stop, resume, delete; the runs as a
data frame (CSV, Parquet); back up the notebook."""

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from app.identity import author_in_words, current_person, sign_in_is_on, whose_filter
from app.literal import literal
from app.services import backup_folder, open_notebook
from app.widgets import frame_downloads
from engine import jobs
from lab_notes import (FINAL_STATUSES, RESUMABLE_STATUSES, SNAPSHOT_PROVENANCE, BackupError, NotFound, Refused,
                       Sort, backup_into, backups_to_keep, may_change)

MAX_DOWNLOAD_BYTES = 500 * 2**20  # larger backups stay on disk; a browser download of them would hold it in memory

PAGE_SIZE = 50
SORTS: dict[Sort, str] = {"newest": "newest first", "oldest": "oldest first", "name": "name", "status": "status",
         "loss": "lowest loss", "accuracy": "highest held-out accuracy", "images_per_s": "fastest (images/s)"}

notebook = open_notebook()
st.title("Runs")
left, middle, right = st.columns([2, 3, 2])
statuses = left.multiselect("Status", ("queued", "running", *FINAL_STATUSES), placeholder="any status")
search = middle.text_input("Search name or preset", placeholder="e.g. mae, 2022-12-14")
sort: Sort = right.selectbox("Sort", list(SORTS), format_func=SORTS.__getitem__) or "newest"
whose = whose_filter("runs:whose")
filters: dict[str, Any] = dict(status=statuses or None, search=search.strip() or None, owner=whose)
number = st.session_state.get("runs_page", 1)
page = notebook.runs_page(**filters, sort=sort, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
if not page.summaries and number > 1:  # the filters shrank the list below this page: back to the first
    number = st.session_state["runs_page"] = 1
    page = notebook.runs_page(**filters, sort=sort, limit=PAGE_SIZE)
if not page.total:
    st.info("No runs yet." if not (statuses or search or whose) else "No run matches these filters.")
    st.page_link("app_pages/new_run.py", label="Launch a run", icon="🚀")
    st.stop()
pages = -(-page.total // PAGE_SIZE)
if pages > 1:
    st.number_input(f"Page (of {pages}; {page.total:,} runs)", 1, pages, key="runs_page")
shown = page.summaries
runs = [summary.run for summary in shown]


def duration(run) -> str:
    if run.started_at is None:
        return ""
    end = run.ended_at or dt.datetime.now(dt.timezone.utc)
    return str(dt.timedelta(seconds=int((end - run.started_at).total_seconds())))


now = dt.datetime.now(dt.timezone.utc)
rows = []
provenance = notebook.latest_snapshots([run.id for run in runs], SNAPSHOT_PROVENANCE)
for summary in shown:
    run = summary.run
    git = provenance.get(run.id, {}).get("git", {})
    eta = summary.eta(now)
    rows.append({
        "id": run.id, "name": run.name, **({"by": author_in_words(run.owner)} if sign_in_is_on() else {}),
        "preset": run.preset or "", "status": run.status,
        "progress": summary.progress, "step": f"{summary.step:,} / {summary.episodes:,}",
        "ETA": str(eta) if eta is not None else "", "loss": summary.loss, "held-out acc": summary.accuracy,
        "images/s": summary.images_per_s, "device": run.device or "",
        "started": run.started_at.astimezone().strftime("%Y-%m-%d %H:%M") if run.started_at else "",
        "duration": duration(run), "reason": run.status_reason or "",
        "code": ("⚠️ dirty " if git.get("dirty") else "") + git.get("commit", "")[:8],
    })
table = pd.DataFrame(rows)
picked = st.dataframe(table, hide_index=True, on_select="rerun", selection_mode="multi-row", key="runs_table",
                      column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                 format="percent"),
                                     "loss": st.column_config.NumberColumn(format="%.4g"),
                                     "held-out acc": st.column_config.NumberColumn(format="%.3f"),
                                     "images/s": st.column_config.NumberColumn(format="%.0f")})
chosen = [int(table.iloc[i]["id"]) for i in picked.selection.rows]
st.caption("Select rows to act on them." if not chosen else f"Selected: {', '.join(map(str, chosen))}")

cols = st.columns(5)
if cols[0].button("Open", disabled=len(chosen) != 1):
    st.switch_page("app_pages/run.py", query_params={"run": str(chosen[0])})
if cols[1].button("Compare", disabled=len(chosen) < 2):
    st.switch_page("app_pages/compare.py", query_params={"runs": ",".join(map(str, chosen))})
by_id = {run.id: run for run in runs}


me = current_person()


def not_mine(verb: str, run_ids: list[int]) -> list[str]:
    """Why `verb` is not allowed on some of `run_ids` (one reason per run): the button says so before a click,
    and the jobs service refuses them all the same."""
    return [p.reason for p in (may_change(me, by_id[i].owner, f"{verb} run {i}") for i in run_ids) if not p]


def act(action, run_ids: list[int]) -> None:
    """Ask the jobs service for each run; the notebook decides from the run's state now, not this page's, and
    the jobs service from who asks."""
    for run_id in run_ids:
        try:
            message = action(run_id)
        except (Refused, NotFound) as refusal:
            st.session_state.setdefault("refusals", []).append(str(refusal))
        else:
            if message:
                st.session_state.setdefault("done", []).append(message)
    st.rerun()


for message in st.session_state.pop("done", []):
    st.toast(literal(message))
for refusal in st.session_state.pop("refusals", []):
    st.warning(literal(refusal))
stoppable = [i for i in chosen if by_id[i].status in ("queued", "running")]
resumable = [i for i in chosen if by_id[i].status in RESUMABLE_STATUSES]
# Disabled when none of the selection may be acted on; a mixed selection acts on each, and the refusals say why.
refused = {"stop": not_mine("stop", stoppable), "resume": not_mine("resume", resumable),
           "delete": not_mine("delete", chosen)}
if cols[2].button("Stop", disabled=not stoppable or len(refused["stop"]) == len(stoppable),
                  help=literal("; ".join(refused["stop"])) or None):
    act(lambda i: jobs.request_stop(notebook, i, by=me), chosen)
if cols[3].button("Resume", disabled=not resumable or len(refused["resume"]) == len(resumable),
                  help=literal("; ".join(refused["resume"])) or None):
    act(lambda i: f"run {i}: queued to resume from step {jobs.resume(notebook, i, by=me)}", chosen)
with cols[4].popover("Delete", disabled=not chosen or len(refused["delete"]) == len(chosen),
                     help=literal("; ".join(refused["delete"])) or None):
    st.write(f"Delete run(s) {chosen} with their metrics, images, checkpoints and files? Notes stay. A running "
             "run is refused: stop it first.")
    if st.button("Yes, delete", type="primary"):
        def delete_one(run_id: int) -> str:
            jobs.delete(notebook, run_id, by=me)
            return f"run {run_id}: deleted"
        act(delete_one, chosen)
for reason in dict.fromkeys(refused["stop"] + refused["resume"] + refused["delete"]) if chosen else ():
    st.caption(f"🔒 {literal(reason)}")

st.divider()
st.subheader("Your own analysis")
st.caption("One row per run matching the filters (all pages): its config flattened, the last value of each "
           "metric, status and provenance (`Notebook.runs_frame()` gives the same in Jupyter).")
frame_downloads(lambda: notebook.runs_frame(r.id for r in notebook.list_runs(**filters)), "runs", key="runs-frame")
with st.expander("💾 Back up the notebook"):
    folder = backup_folder()
    st.caption(f"A consistent copy taken while runs write (SQLite's online backup, or pg_dump), with a manifest of "
               f"the checkpoint files it refers to, into `{folder}` (the newest {backups_to_keep()} are kept).")
    # A backup holds everyone's runs and notes, and its file is served to whoever clicks: admins only in team
    # mode (in single-user mode the local user is the admin).
    backup_refused = None if current_person().is_admin else "Backups hold everyone's runs and notes: admins only."
    if backup_refused:
        st.caption(f"🔒 {backup_refused}")
    if st.button("Back up now", disabled=backup_refused is not None, help=backup_refused) and not backup_refused:
        try:
            made = backup_into(notebook.url, folder, keep=backups_to_keep())
        except BackupError as error:
            st.error(str(error))
        else:
            st.success(f"Backed up to `{made.path}`: {made.rows['runs']} runs, {made.rows['metrics']:,} metric "
                       f"points; {made.artifacts} artifact files listed in its manifest, {made.missing} not found "
                       "on this host.")
            if made.path.stat().st_size <= MAX_DOWNLOAD_BYTES:
                st.download_button("⬇ Download the backup", made.path.read_bytes(), made.path.name)
