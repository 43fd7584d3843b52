"""The New-run page's "Your script" kind: command, working folder under the code root ($LAB_CODE_DIR),
environment variables, TensorBoard logdir and executor; validated as the worker will (`engine.jobs.validate_script`)
and queued with `engine.jobs.submit_script`. Typed text is shown back only as literal text."""

from __future__ import annotations

import shlex
from typing import Any

import streamlit as st

from app.identity import owner_to_record
from app.literal import literal, literal_code
from app.services import may_start_worker
from engine import jobs
from engine.config import ConfigError, Problem
from lab_notes import Notebook, Run


def script_values(source: str, defaults: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """The form's fields (keyed by `source`, so a clone starts from its parent's values) as a ScriptJob's plain
    values, and the problems of what cannot even be read (an unbalanced quote, a line that is not NAME=value)."""
    problems: list[Problem] = []
    runtime = defaults.get("runtime", {})
    typed = st.text_input("Command (split like a shell line, run without one)",
                          value=shlex.join(defaults.get("command", [])), key=f"command:{source}",
                          placeholder="python train.py --lr 0.1")
    try:
        command = shlex.split(typed)
    except ValueError as error:
        command = []
        problems.append(Problem("command", f"cannot be split into arguments: {error}"))
    workdir = st.text_input(f"Working folder, under the code folder {jobs.code_root()} ($LAB_CODE_DIR)",
                            value=defaults.get("workdir", "."), key=f"workdir:{source}")
    env_text = st.text_area("Environment variables (NAME=value, one a line)", key=f"env:{source}",
                            value="\n".join(f"{k}={v}" for k, v in defaults.get("env", {}).items()))
    env: dict[str, str] = {}
    try:
        env = jobs.parse_env([line for line in env_text.splitlines() if line.strip()])
    except ConfigError as error:
        problems.extend(error.problems)
    tensorboard = st.text_input("TensorBoard logdir (TENSORBOARD_LOGDIR; empty: a folder in the run's folder)",
                                value=defaults.get("tensorboard") or "", key=f"tensorboard:{source}")
    left, right = st.columns(2)
    executor = left.radio("Executor", ["local", "slurm"], horizontal=True, key=f"executor:{source}",
                          index=["local", "slurm"].index(runtime.get("executor", "local")),
                          format_func={"local": "this worker's machine", "slurm": "a Slurm job"}.get)
    processes = right.number_input("Processes (copies, with RANK and WORLD_SIZE)", 1, 64,
                                   int(runtime.get("processes", 1)), key=f"processes:{source}")
    values = {"command": command, "workdir": workdir, "env": env, "tensorboard": tensorboard.strip() or None,
              "runtime": {**runtime, "executor": executor, "processes": int(processes)}}
    return values, problems


def script_form(notebook: Notebook, parent: Run | None, name_default: str) -> None:
    """The whole form, down to its Launch button (which switches to the new run's page)."""
    source = f"clone{parent.id}" if parent is not None else "script"
    defaults = parent.config if parent is not None else {"command": [], "workdir": "."}
    name = st.text_input("Run name", value=name_default, key=f"name:{source}")
    values, problems = script_values(source, defaults)
    job = None
    if not problems:
        try:
            job = jobs.validate_script(values)
        except ConfigError as error:
            problems = error.problems
    for problem in problems:
        st.error(f"**{literal(problem.path)}**: {literal(problem.message)}")
    if job is not None:
        st.caption(f"Runs {literal_code(job.command)} in {literal_code(job.folder())}; the script finds "
                   "`LAB_NOTEBOOK_URL`, `LAB_RUN_ID` and `TENSORBOARD_LOGDIR` in its environment.")
    if st.button("🚀 Launch", type="primary", disabled=job is None or not name.strip()) and job is not None:
        submitted = jobs.submit_script(notebook, job, name=name.strip(), parent_id=parent.id if parent else None,
                                       start_worker=may_start_worker(), owner=owner_to_record())
        st.switch_page("app_pages/run.py", query_params={"run": str(submitted.run_id)})
