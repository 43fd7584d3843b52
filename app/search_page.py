"""The Sweep page of a search: the best value of the objective so far over the trials, Optuna's parameter
importances (or why there are none yet), parallel coordinates of the trials, and the trials table with each
trial's state, its run's status and the step it was pruned at."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.charts import parallel_coordinates
from app.literal import plotly_literal
from app.literal import literal, literal_code
from engine.sweeps import search_overview
from lab_notes import Notebook, Sweep

STATE_WORDS = {"COMPLETE": "✅ complete", "PRUNED": "✂️ pruned", "FAIL": "❌ failed", "RUNNING": "⏳ running"}


def best_so_far_figure(overview) -> go.Figure:
    """Each completed trial's objective (dots) and the best so far after each trial (a step line)."""
    done = [t for t in overview.trials if t.state == "COMPLETE" and t.value is not None and math.isfinite(t.value)]
    figure = go.Figure()
    figure.add_scatter(x=[t.number for t in done], y=[t.value for t in done], mode="markers", name="trial",
                       marker={"size": 8, "color": "#999"})
    figure.add_scatter(x=[n for n, _ in overview.best_so_far], y=[v for _, v in overview.best_so_far],
                       mode="lines", line_shape="hv", name="best so far", line={"width": 3})
    figure.update_layout(height=320, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                         title=plotly_literal(f"{overview.objective} ({overview.direction[:3]}) over trials"),
                         xaxis_title="trial", yaxis_title=plotly_literal(overview.objective))
    return figure


def importance_figure(importances: dict[str, float]) -> go.Figure:
    names = list(importances)[::-1]  # the most important at the top
    figure = go.Figure(go.Bar(x=[importances[n] for n in names], y=[plotly_literal(n) for n in names],
                              orientation="h"))
    figure.update_layout(height=80 + 40 * len(names), margin={"l": 140, "r": 20, "t": 40, "b": 40},
                         title="Parameter importance (Optuna, fANOVA)", xaxis_title="share of the objective's variance")
    return figure


def show_search(notebook: Notebook, sweep: Sweep) -> None:
    """Draw the page of search `sweep`."""
    overview = search_overview(notebook, sweep.id)
    st.title(f"Search {sweep.id} — {literal(sweep.name)}")
    st.markdown(f"{literal(overview.sampler.upper())} search over "
                + ", ".join(f"{literal_code(path)} ∈ {literal_code(text)}" for path, text in sweep.fields.items())
                + f" · {overview.direction} {literal_code(overview.objective)} · budget {overview.budget} trials, "
                  f"{overview.parallel} at once · pruner {literal(overview.pruner)} · preset "
                  f"{literal_code(sweep.preset or '—')}")
    counts = {state: sum(t.state == state for t in overview.trials) for state in STATE_WORDS}
    st.caption(f"{len(overview.trials)} of {overview.budget} trials asked" + ("" if not overview.done else " — done")
               + " · " + " · ".join(f"{STATE_WORDS[s]} {n}" for s, n in counts.items() if n))
    if not overview.trials:
        st.info("No trial yet: the worker asks the first ones at its next step.")
        return
    best = overview.best
    if best is not None:
        st.success(f"🏆 Best: trial {best.number}, [run {best.run_id}](/run?run={best.run_id}), "
                   f"{literal(overview.objective)} = {best.value:.4g} with "
                   + literal(", ".join(f"{p} = {v:.4g}" if isinstance(v, float) else f"{p} = {v}"
                                       for p, v in best.params.items())))
    left, right = st.columns([3, 2])
    left.plotly_chart(best_so_far_figure(overview), key="search:best")
    if overview.importances:
        right.plotly_chart(importance_figure(overview.importances), key="search:importance")
    else:
        right.info(literal(overview.importances_note))
    scored = [t for t in overview.trials if t.params]
    st.plotly_chart(parallel_coordinates([t.params for t in scored], overview.objective,
                                         [t.value if t.state == "COMPLETE" else None for t in scored]),
                    key="search:parcoords")
    table = pd.DataFrame([{"trial": t.number, "run": t.run_id, "state": STATE_WORDS.get(t.state, t.state),
                           "run status": t.run_status,
                           **{path.rsplit(".", 1)[-1]: _shown(value) for path, value in t.params.items()},
                           overview.objective: t.value, "pruned at step": t.pruned_at,
                           "why": t.reason or ""} for t in overview.trials])
    st.dataframe(table, hide_index=True, width="stretch")


def _shown(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
