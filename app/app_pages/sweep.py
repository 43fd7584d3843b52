"""One sweep (`?sweep=ID`): its runs' swept values against a final metric in parallel coordinates, the best run
marked, and their curves overlaid."""

import math

import pandas as pd
import streamlit as st

from app.charts import metric_figure, parallel_coordinates
from app.literal import literal, literal_code
from app.search_page import show_search
from app.services import open_notebook, run_id_from
from lab_notes import EVAL_ACC_DISCRIMINATOR, EVAL_ACC_PROTOTYPE, LOSS_TOTAL, NotFound

MAX_POINTS = 2000

notebook = open_notebook()
sweep_id = run_id_from(st.query_params.get("sweep"))
if sweep_id is None:
    names = {s.id: s.name for s in notebook.list_sweeps()}
    if not names:
        st.info("No sweeps yet: the New-run form and `python -m engine sweep` queue them.")
        st.page_link("app_pages/new_run.py", label="New run", icon="🚀")
        st.stop()
    sweep_id = st.selectbox("Sweep", list(names), format_func=lambda i: f"{i} · {names[i]}")  # the latest first
    st.query_params["sweep"] = str(sweep_id)
try:
    sweep = notebook.get_sweep(sweep_id)
except NotFound as error:
    st.error(literal(error))
    st.stop()
if sweep.mode == "search":
    show_search(notebook, sweep)
    st.stop()

st.title(f"Sweep {sweep.id} — {literal(sweep.name)}")
st.markdown(f"{literal(sweep.mode)} over "
            + ", ".join(f"{literal_code(path)} ∈ {literal(values)}" for path, values in sweep.fields.items())
            + f" · preset {literal_code(sweep.preset or '—')} · {len(sweep.run_ids)} runs")
runs = [notebook.get_run(i) for i in sweep.run_ids]
if not runs:
    st.info("Every run of this sweep was deleted.")
    st.stop()
latest = {run.id: notebook.latest_metrics(run.id) for run in runs}
keys = sorted(set().union(*(values.keys() for values in latest.values())))
if not keys:
    st.info("No run of this sweep has logged a metric yet: " + ", ".join(f"{r.id} {r.status}" for r in runs))
    st.stop()
default = next((k for k in (EVAL_ACC_PROTOTYPE, EVAL_ACC_DISCRIMINATOR, LOSS_TOTAL) if k in keys), keys[0])
left, right = st.columns([3, 1])
metric = left.selectbox("Judge the runs by their last", keys, index=keys.index(default))
higher = right.radio("Better is", ["higher", "lower"], index=0 if "acc" in metric else 1, horizontal=True) == "higher"


def swept(run) -> dict[str, object]:
    """The swept fields' values, read from the run's own config."""
    found = {}
    for path in sweep.fields:
        node = run.config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        found[path] = node
    return found


scores = {run.id: latest[run.id].get(metric, (None, None))[1] for run in runs}
finite = {i: v for i, v in scores.items() if v is not None and math.isfinite(v)}
best = (max if higher else min)(finite, key=finite.__getitem__) if finite else None
if best is not None:
    best_name = next(r.name for r in runs if r.id == best)
    st.success(f"🏆 Best by {literal(metric)}: [run {best} — {literal(best_name)}](/run?run={best}) "
               f"({finite[best]:.4g})")
st.plotly_chart(parallel_coordinates([swept(r) for r in runs], metric, [scores[r.id] for r in runs]),
                key="sweep:parcoords")
table = pd.DataFrame([{"best": "🏆" if run.id == best else "", "id": run.id, "status": run.status,
                       **{path.rsplit(".", 1)[-1]: str(value) for path, value in swept(run).items()},
                       metric: scores[run.id]} for run in runs])
st.dataframe(table, hide_index=True, width="stretch")
smoothing = st.slider("Smoothing (debiased EMA)", 0.0, 0.99, 0.6, 0.01, key="smoothing", persist_state="session")
series = {f"{run.id} · {run.name}": notebook.metric_history(run.id, metric, max_points=MAX_POINTS) for run in runs}
st.plotly_chart(metric_figure({k: v for k, v in series.items() if len(v[0])}, title=metric, smoothing=smoothing),
                key="sweep:curves")
