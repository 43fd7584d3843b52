"""The New-run form's Sweep section, search kind: fields with ranges, the objective, the budget, trials at once,
sampler and pruner. Everything is checked by `engine.sweeps.search_settings` before the Launch button is live;
a problem shows naming its field, and nothing is queued."""

from __future__ import annotations

import streamlit as st

from app.identity import owner_to_record
from app.literal import literal
from engine.config import ConfigError, Problem, RunConfig
from engine.sweeps import (MAX_FIELDS, MAX_PARALLEL, MAX_TRIALS, OBJECTIVE_KEYS, PRUNERS, SAMPLERS, SearchSettings,
                           parse_objective, search_settings, submit_search, sweepable_fields)
from lab_notes import Notebook

SAMPLER_WORDS = {"tpe": "TPE (Bayesian)", "random": "random", "grid": "grid"}
PRUNER_WORDS = {"median": "median (stop a trial below the median of earlier ones at the same step)",
                "halving": "successive halving (keep the best third at each rung)", "none": "none"}


def search_section(notebook: Notebook, cfg: RunConfig | None, *, source: str, name: str, preset: str | None) -> None:
    """The search's inputs and its Launch button; on launch, switches to the new search's Sweep page."""
    sweepable = sweepable_fields()
    ranges, problems = [], []
    for row in range(MAX_FIELDS):
        path_column, range_column = st.columns([2, 3])
        path = path_column.selectbox(f"Field {row + 1}", [None, *sweepable], key=f"search-field{row}:{source}",
                                     format_func=lambda p: "(none)" if p is None else p)
        text = range_column.text_input(f"Range {row + 1}", key=f"search-range{row}:{source}", disabled=path is None,
                                       placeholder="low:high, low:high:log, or choices a,b,c")
        if path is not None:
            ranges.append(f"{path}={text.strip()}")
    left, middle, right = st.columns(3)
    objective = left.selectbox("Objective", OBJECTIVE_KEYS, key=f"search-objective:{source}")
    way = middle.radio("Better is", ["max", "min"], horizontal=True, key=f"search-way:{source}",
                       index=0 if parse_objective(objective)[1] == "maximize" else 1)
    trials = right.number_input("Budget (trials)", 1, MAX_TRIALS, 20, key=f"search-trials:{source}")
    left, middle, right = st.columns(3)
    parallel = left.number_input("Trials at once", 1, MAX_PARALLEL, 2, key=f"search-parallel:{source}")
    sampler = str(middle.selectbox("Sampler", list(SAMPLERS), key=f"search-sampler:{source}",
                                   format_func=lambda s: SAMPLER_WORDS.get(s, s)))
    pruner = str(right.selectbox("Pruner", list(PRUNERS), key=f"search-pruner:{source}",
                                 format_func=lambda p: PRUNER_WORDS.get(p, p)))
    settings: SearchSettings | None = None
    if cfg is not None and ranges:
        try:
            settings = search_settings(cfg, ranges, f"{objective}:{way}", trials=int(trials),
                                       parallel=int(parallel), sampler=sampler, pruner=pruner)
        except ConfigError as error:
            problems.extend(error.problems)
    elif cfg is not None:
        problems.append(Problem("search", "choose at least one field and give its range"))
    for problem in problems:
        st.error(f"**{literal(problem.path)}**: {literal(problem.message)}")
    if st.button(f"🔎 Launch search ({int(trials)} trials)", disabled=settings is None or not name.strip(),
                 key=f"search-launch:{source}"):
        assert settings is not None and cfg is not None
        from engine import jobs

        sweep_id = submit_search(notebook, cfg, settings, name=name.strip(), preset=preset, owner=owner_to_record())
        from app.services import may_start_worker

        if may_start_worker():
            jobs.ensure_worker(notebook.url, runs_dir=jobs.RUNS_DIR)
        st.switch_page("app_pages/sweep.py", query_params={"sweep": str(sweep_id)})
