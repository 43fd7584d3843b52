"""New run: pick a preset (or clone a run), edit the generated form, see lint, launch."""

from typing import Any, cast

import streamlit as st

from app.form import config_form
from app.search_form import search_section
from app.identity import owner_to_record
from app.literal import literal
from app.script_form import script_form
from app.services import may_start_worker, open_notebook, run_id_from
from engine import jobs
from engine.config import ConfigError, Problem, fields_set
from engine.presets import PRESET_INFO, what_trains
from engine.sweeps import MAX_FIELDS, Mode, expand, parse_field, sweepable_fields
from lab_notes import NotFound

notebook = open_notebook()
clone_of = run_id_from(st.query_params.get("clone"))
parent = None
if clone_of is not None:
    try:
        parent = notebook.get_run(clone_of)
    except NotFound:
        st.error(f"There is no run {clone_of} to clone.")

st.title("New run")
own_code = parent is not None and jobs.is_script(parent.config)
if parent is None:
    own_code = st.radio("Kind", ["preset", "script"], horizontal=True, key="kind",
                        format_func={"preset": "A preset", "script": "Your script"}.get) == "script"
if own_code:  # the researcher's own command (app.script_form), cloned or new
    if parent is not None:
        st.info(f"Cloning run {parent.id} — {literal(parent.name)}. The new run records it as its parent.")
    script_form(notebook, parent, f"{parent.name} (edit)" if parent is not None else "my script")
    st.stop()
if parent is not None:
    st.info(f"Cloning run {parent.id} — {literal(parent.name)}. The new run records it as its parent; the original "
            "is unchanged.")
    values, preset_name, source = parent.config, parent.preset, f"clone{parent.id}"
    changed = jobs.code_changed_since(notebook, parent.id)
    if changed:
        st.warning(f"⚠️ Today's code is not the code run {parent.id} ran with: {literal(changed)}. The same config "
                   "may not give the same result; its Provenance tab has the commit and the diff.")
    name_default = f"{parent.name} (edit)"
else:
    names = list(PRESET_INFO)
    asked = st.query_params.get("preset")  # Edit on the home page: this experiment's form
    preset_name = st.selectbox(
        "Preset", names, index=names.index(asked if asked in PRESET_INFO else "tiny"),
        format_func=lambda n: f"{PRESET_INFO[n].journal_date or '—'} · {n} — {PRESET_INFO[n].summary}")
    values, source, name_default = PRESET_INFO[preset_name].config.model_dump(mode="json"), preset_name, preset_name

name = st.text_input("Run name", value=name_default, key=f"name:{source}")
# What the preset (or the cloned run) sets comes first, the rest folded: a journal experiment reads as its changes.
edited, cfg, errors, warnings = config_form(
    values, key_prefix=source, first=fields_set(values),
    first_heading=f"What run {parent.id} sets" if parent is not None else "What this experiment sets")
if cfg is not None:
    st.caption(f"**Trains:** {what_trains(cfg)}")

if errors:
    st.error(f"{len(errors)} field(s) need fixing before launch: " + literal(", ".join(p.path for p in errors)))
elif warnings:
    st.warning(f"Lint: {len(warnings)} known pitfall(s) in this config (shown under the fields). You can still "
               "launch; the warnings are stored with the run.")
with st.expander("🧹 Sweep: queue sibling runs over up to three fields instead"):
    sweepable = sweepable_fields()  # the training fields only: never runtime.* (Slurm, host) or data.path
    mode = cast(Mode, st.radio("Runs", ["grid", "list"], horizontal=True, key=f"sweep-mode:{source}",
                    format_func={"grid": "every combination (grid)", "list": "values taken together (list)"}.get))
    fields: dict[str, list[Any]] = {}
    problems: list[Problem] = []
    for row in range(MAX_FIELDS):
        path_column, values_column = st.columns([2, 3])
        path = path_column.selectbox(f"Field {row + 1}", [None, *sweepable], key=f"sweep-field{row}:{source}",
                                     format_func=lambda p: "(none)" if p is None else p)
        text = values_column.text_input(f"Values {row + 1}", key=f"sweep-values{row}:{source}",
                                        placeholder="comma-separated, e.g. 1e-3, 1e-2", disabled=path is None)
        if path is not None and text.strip():
            try:
                fields.update([parse_field(f"{path}={text}")])
            except ConfigError as error:
                problems.extend(error.problems)
    points = []
    if cfg is not None and fields and not problems:
        try:
            points = expand(cfg, fields, mode)
        except ConfigError as error:
            problems.extend(error.problems)
    for problem in problems:
        st.error(f"**{literal(problem.path)}**: {literal(problem.message)}")
    if points:
        st.caption(literal(" · ".join(point.label for point in points)))
    if st.button(f"🧹 Launch sweep ({len(points)} runs)", disabled=not points or not name.strip()) and cfg is not None:
        queued_sweep = jobs.submit_sweep(notebook, cfg, fields, mode, name=name.strip(), preset=preset_name,
                                      start_worker=may_start_worker(), owner=owner_to_record())
        st.switch_page("app_pages/sweep.py", query_params={"sweep": str(queued_sweep.sweep_id)})
with st.expander("🔎 Sweep that searches: Optuna picks each next run from the results so far"):
    search_section(notebook, cfg, source=source, name=name, preset=preset_name)

if st.button("🚀 Launch", type="primary", disabled=cfg is None or not name.strip()) and cfg is not None:
    # Each Launch checks for a live worker and starts one if the last one died: the queue never stalls.
    submitted = jobs.submit(notebook, cfg, name=name.strip(), preset=preset_name,
                            parent_id=parent.id if parent else None, start_worker=may_start_worker(),
                            owner=owner_to_record(), warnings=warnings)
    st.switch_page("app_pages/run.py", query_params={"run": str(submitted.run_id)})
