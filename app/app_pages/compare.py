"""Compare runs (`?runs=1,2,3`): overlaid curves per metric aligned by step, the config fields that differ,
few-shot accuracy on held-out classes with 95 % intervals, and final metrics side by side."""

import pandas as pd
import streamlit as st

from app.charts import config_diff, few_shot_figure, interval_table, metric_figure, provenance_fields
from app.literal import literal
from app.services import open_notebook
from app.widgets import frame_downloads
from lab_notes import SNAPSHOT_FEW_SHOT, SNAPSHOT_PROVENANCE, NotFound

MAX_POINTS = 2000

notebook = open_notebook()
st.title("Compare runs")
wanted = [p for p in st.query_params.get("runs", "").split(",") if p.strip()]
names = notebook.run_names()
default = [int(p) for p in wanted if p.strip().isdigit()]
chosen = st.multiselect("Runs", list(names), default=[i for i in default if i in names],
                        format_func=lambda i: f"{i} · {names[i]}")
if ",".join(map(str, chosen)) != st.query_params.get("runs", ""):
    st.query_params["runs"] = ",".join(map(str, chosen))
missing = [p for p in wanted if not p.strip().isdigit() or int(p) not in names]
if missing:
    st.warning(f"Not runs in this notebook: {literal(', '.join(missing))}")  # typed into the address
if len(chosen) < 2:
    st.info("Pick at least two runs to compare.")
    st.stop()

try:
    runs = [notebook.get_run(i) for i in chosen]
except NotFound as error:
    st.error(literal(error))
    st.stop()
labels = {r.id: f"{r.id} · {r.name}" for r in runs}

st.subheader("Config: only the fields that differ")
diff = config_diff({labels[r.id]: r.config for r in runs})
if diff:
    st.dataframe(pd.DataFrame(diff).T.astype(str), width="stretch")
else:
    st.info("These runs have identical configs.")

st.subheader("Code, packages and machine: only what differs")
latest_provenance = notebook.latest_snapshots(list(labels), SNAPSHOT_PROVENANCE)
provenances = {labels[i]: provenance_fields(latest_provenance[i]) for i in labels if i in latest_provenance}
code_diff = config_diff(provenances) if len(provenances) > 1 else {}
if code_diff:
    st.dataframe(pd.DataFrame(code_diff).T.astype(str), width="stretch")
else:
    st.info("Same code, packages and machine" if len(provenances) > 1 else
            "Provenance is recorded when a run starts; fewer than two of these runs have it.")

st.subheader("Few-shot accuracy on held-out classes (mean ± 95 % interval)")
reports = notebook.latest_snapshots([r.id for r in runs], SNAPSHOT_FEW_SHOT)
if reports:
    accuracies = {labels[i]: reports[i]["accuracy"] for i in labels if i in reports}
    st.plotly_chart(few_shot_figure(accuracies, title="held-out classes"), key="compare:few-shot")
    st.dataframe(pd.DataFrame(interval_table(accuracies)), width="stretch")
    st.caption(" · ".join(f"{literal(labels[i])}: {reports[i]['n_way']}-way {reports[i]['k_shot']}-shot, "
                          f"{reports[i]['episodes']} episodes on "
                          f"{literal(reports[i].get('judged_on', 'held-out classes'))}"
                          for i in labels if i in reports))
    without = [labels[i] for i in labels if i not in reports]
    if without:
        st.caption(f"No few-shot report yet (written when a run completes): {literal(', '.join(without))}")
else:
    st.info("None of these runs has a few-shot report yet: it is written when a run completes.")

st.subheader("Final metrics")
finals = {labels[r.id]: {k: v for k, (_, v) in notebook.latest_metrics(r.id).items()} for r in runs}
st.dataframe(pd.DataFrame(finals), width="stretch")

st.subheader("Your own analysis")
st.caption("Every point of these runs in long format (`Notebook.metrics_frame(run_ids, keys)` in Jupyter), and "
           "one row per run.")
frame_downloads(lambda: notebook.metrics_frame(chosen), "metrics", key="metrics-frame")
frame_downloads(lambda: notebook.runs_frame(chosen), "runs", key="compared-runs-frame")

st.subheader("Curves")
smoothing = st.slider("Smoothing (debiased EMA)", 0.0, 0.99, 0.6, 0.01, key="smoothing", persist_state="session")
log_y = st.toggle("Log y", key="log y", persist_state="session")
keys = sorted(set().union(*(notebook.metric_keys(r.id) for r in runs)))
for key in keys:
    series = {labels[r.id]: notebook.metric_history(r.id, key, max_points=MAX_POINTS) for r in runs}
    series = {label: s for label, s in series.items() if len(s[0])}
    st.plotly_chart(metric_figure(series, title=key, smoothing=smoothing, log_y=log_y), key=f"compare:{key}")
