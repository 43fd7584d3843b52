"""Home: the latest runs with their progress and loss, and the journal's experiments, each one click from running
(or from its pre-filled form)."""

import datetime as dt

import streamlit as st

from app.charts import sparkline
from app.drafts_view import waiting_draft_count
from app.identity import author_in_words, owner_to_record, sign_in_is_on, whose_filter
from app.literal import literal
from app.services import may_start_worker, open_notebook
from engine import jobs
from engine.presets import PRESET_INFO
from lab_notes import LOSS_TOTAL

RECENT = 8
BADGES = {"queued": "⏳", "running": "🟢", "completed": "✅", "stopped": "⏹️", "diverged": "💥", "failed": "❌"}

notebook = open_notebook()
st.title("Lab notebook")


def draw_recent(owner: str | None) -> None:
    """The newest runs (`owner`'s, or everyone's) with a progress bar (step / total, ETA) and a sparkline of the
    loss."""
    recent = notebook.runs_page(limit=RECENT, owner=owner).summaries
    if not recent:
        st.info("No runs yet: launch one of the journal's experiments below." if owner is None
                else "You have no runs yet: launch one of the journal's experiments below.")
        return
    now = dt.datetime.now(dt.timezone.utc)
    for summary in recent:
        run = summary.run
        label, bar, spark = st.columns([3, 4, 3], vertical_alignment="center")
        # the name and owner as text (escaped), small print by Streamlit's own directive: no HTML read here
        label.markdown(f"{BADGES.get(run.status, '')} [**{run.id} · {literal(run.name)}**](/run?run={run.id})  \n"
                       f":small[{run.status}"
                       + (f" · by {literal(author_in_words(run.owner))}" if sign_in_is_on() else "") + "]")
        eta = summary.eta(now)
        bar.progress(summary.progress, text=f"step {summary.step:,} / {summary.episodes:,}"
                                            + (f" · ETA {eta}" if eta is not None else ""))
        steps, values = notebook.metric_history(run.id, LOSS_TOTAL, max_points=100)
        if len(steps):
            spark.plotly_chart(sparkline(steps, values), key=f"spark:{run.id}", config={"staticPlot": True})


waiting = waiting_draft_count(notebook)
if waiting:  # the notebook wrote these when runs ended: the researcher's words are what they wait for
    st.page_link("app_pages/journal.py", icon="📝", query_params={"show": "drafts"},
                 label=f"{waiting} journal draft{'s' if waiting != 1 else ''} wait for you: accept, edit or discard")
else:
    st.caption("📝 No journal drafts wait: each run that ends writes one.")

st.subheader("Latest runs")
whose = whose_filter("home:whose")
live = bool(notebook.runs_page(status=["queued", "running"], owner=whose, limit=1).total)
st.fragment(draw_recent, run_every=2.0 if live else None)(whose)

st.subheader("The journal's experiments")
st.caption("Each at a size a CPU runs in about a minute; Launch queues it as it is, Edit opens its form.")
for name, info in PRESET_INFO.items():
    if not info.journal_date or name.endswith("-journal-scale"):
        continue
    text, launch, edit = st.columns([7, 1.4, 1.1], vertical_alignment="center")
    text.markdown(f"**{info.journal_date}** · `{name}` — {info.summary}  \n:small[trains: {info.trains}]")
    if launch.button("🚀 Launch", key=f"launch:{name}"):
        submitted = jobs.submit(notebook, info.config, name=name, preset=name, start_worker=may_start_worker(),
                                owner=owner_to_record())
        st.switch_page("app_pages/run.py", query_params={"run": str(submitted.run_id)})
    if edit.button("✎ Edit", key=f"edit:{name}"):
        st.switch_page("app_pages/new_run.py", query_params={"preset": name})
