"""The tracking client: any script's training as a run of the notebook, the same kind of run the engine's presets
make (Runs, live charts, Compare, owners).

    import lab_notes
    with lab_notes.start_run(name="my idea", config={"lr": 1e-3}) as run:   # LAB_NOTEBOOK_URL, else ./notebook.db
        run.log({"loss": 0.7, "acc/heldout": 0.5}, step=10)
        run.log_image("reconstruction", image, step=10)
        run.note("what I noticed")

A script the notebook launched (its environment names LAB_RUN_ID, LAB_ATTEMPT and LAB_ATTEMPT_TOKEN) attaches to
that run instead of making one. Imports no torch."""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, NoReturn

from lab_notes.client_run import EXIT_PATIENCE_SECONDS, MAX_BUFFERED_POINTS, TrackedRun, outcome
from lab_notes.client_values import MAX_NAME_CHARS, BadValue, checked_text
from lab_notes.db import default_url
from lab_notes.notebook_sink import retry_while_unreachable
from lab_notes.records import Attempt
from lab_notes.runs import Refused
from lab_notes.store import Notebook

RUN_ID_VARIABLE = "LAB_RUN_ID"
ATTEMPT_VARIABLE = "LAB_ATTEMPT"
TOKEN_VARIABLE = "LAB_ATTEMPT_TOKEN"
URL_VARIABLE = "LAB_NOTEBOOK_URL"
# The client writes from its own thread: the notebook's own periodic flusher has nothing left to do.
IDLE_FLUSH_SECONDS = 3600.0


def start_run(name: str | None = None, config: Mapping[str, Any] | None = None, *, url: str | None = None,
              owner: str | None = None, max_buffered_points: int = MAX_BUFFERED_POINTS,
              exit_patience: float = EXIT_PATIENCE_SECONDS) -> TrackedRun:
    """A run this script logs to, in the notebook at `url` (default $LAB_NOTEBOOK_URL, else ./notebook.db).
    Made now as a running run named `name` (default: the script's file name) with `config`, owned by `owner`
    (None: the local user); or, under a launch by the notebook, the launched run, with `config` kept beside it.
    Use it as a context manager (or call `finish()`); a run left open ends when the script does."""
    checked_config = _checked_config(config)
    attempt = attempt_from_environment()
    notebook = retry_while_unreachable(lambda: Notebook(url or default_url(), flush_interval=IDLE_FLUSH_SECONDS))
    try:
        if attempt is not None:
            run_name = _attachable(notebook, attempt)
            run = TrackedRun(notebook, attempt, name=run_name, owns_run=False, owner=owner,
                             max_buffered_points=max_buffered_points, exit_patience=exit_patience)
            if checked_config:
                run.log_hyperparameters(checked_config)
        else:
            run_name = (checked_text("start_run: name", name, MAX_NAME_CHARS) if name else
                        _storable(Path(sys.argv[0] or "script").stem or "script")[:MAX_NAME_CHARS])
            made = retry_while_unreachable(lambda: notebook.create_running_run(
                checked_config, name=run_name, owner=owner, pid=os.getpid(),
                worker_id=f"script on {socket.gethostname()} pid {os.getpid()}"))
            run = TrackedRun(notebook, made, name=run_name, owns_run=True, owner=owner,
                             max_buffered_points=max_buffered_points, exit_patience=exit_patience)
    except BaseException:
        notebook.close()
        raise
    _end_at_exit(run)
    return run


def _storable(text: str) -> str:
    """`text` (a file name, maybe holding undecodable bytes as lone surrogates) as text the database can store."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")


def attempt_from_environment() -> Attempt | None:
    """The launched run's attempt named by LAB_RUN_ID, LAB_ATTEMPT and LAB_ATTEMPT_TOKEN; None without
    LAB_RUN_ID; BadValue naming the variable when one is missing or malformed."""
    run_id = os.environ.get(RUN_ID_VARIABLE, "").strip()
    if not run_id:
        return None
    number, token = os.environ.get(ATTEMPT_VARIABLE, "").strip(), os.environ.get(TOKEN_VARIABLE, "").strip()
    if not run_id.isdigit():
        raise BadValue(f"{RUN_ID_VARIABLE}={run_id!r}: not a run id (a whole number)")
    if not number.isdigit():
        raise BadValue(f"{ATTEMPT_VARIABLE}={number!r}: {RUN_ID_VARIABLE} is set, so {ATTEMPT_VARIABLE} must be the "
                       f"attempt's number")
    if not token:
        raise BadValue(f"{TOKEN_VARIABLE}: {RUN_ID_VARIABLE} is set, so the attempt's token must be too")
    return Attempt(int(run_id), int(number), token)


def _attachable(notebook: Notebook, attempt: Attempt) -> str:
    """The launched run's name, once it is known to be running under `attempt`; Refused naming its status
    otherwise."""
    run = retry_while_unreachable(lambda: notebook.get_run(attempt.run_id))
    if run.status != "running":
        raise Refused(f"{RUN_ID_VARIABLE}={attempt.run_id}: run {attempt.run_id} is {run.status}, not running: a "
                      f"script attaches only to a running run")
    # the token is checked where it is stored (a renewed lease also tells the reaper this process is alive)
    if run.attempt != attempt.number or not retry_while_unreachable(lambda: notebook.heartbeat(attempt)):
        raise Refused(f"{RUN_ID_VARIABLE}={attempt.run_id}: attempt {attempt.number} with this token does not own "
                      f"run {attempt.run_id} (it is on attempt {run.attempt})")
    return run.name


def _checked_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise BadValue(f"config: a mapping of name -> value, not {type(config).__name__}")
    try:
        # stored as JSON on SQLite and PostgreSQL alike: NaN or an object would not survive the trip
        return json.loads(json.dumps(dict(config), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise BadValue(f"config: not plain JSON values ({error}); pass numbers, strings, lists and dicts") from None


# --- a run left open ends with the script --------------------------------------------------------------------

_open_runs: list[TrackedRun] = []
_uncaught: list[tuple[type[BaseException], BaseException, TracebackType | None]] = []
# sys.exit calls on the main thread: the status, and the step each open run had then
_exits: list[tuple[str | int | None, dict[TrackedRun, int]]] = []


_hooks_installed = False


def _end_at_exit(run: TrackedRun) -> None:
    if not _hooks_installed:
        _install_hooks()
    _open_runs[:] = [r for r in _open_runs if not r.finished]
    _open_runs.append(run)


def _install_hooks() -> None:
    """An uncaught exception (Ctrl-C included) and a `sys.exit(code)` are remembered, so a run the script never
    ended is ended at exit as failed (or stopped) rather than completed. Python calls no hook for SystemExit, and an
    atexit function cannot see the exit status, so sys.exit is wrapped: a bare `raise SystemExit(3)` outside a
    `with` block is not seen."""
    global _hooks_installed
    _hooks_installed = True
    previous, exit_ = sys.excepthook, sys.exit

    def remember(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        _uncaught.append((kind, error, trace))
        previous(kind, error, trace)

    def remember_exit(status: str | int | None = None) -> NoReturn:
        if threading.current_thread() is threading.main_thread():  # elsewhere it ends only its thread
            _exits.append((status, {run: run.last_step for run in _open_runs if not run.finished}))
        exit_(status)

    sys.excepthook = remember
    sys.exit = remember_exit
    atexit.register(_finish_open_runs)


def _finish_open_runs() -> None:
    for run in _open_runs:
        run.finish(*how_it_ended(run))


def how_it_ended(run: TrackedRun) -> tuple[str, str | None]:
    """(status, reason) for a run still open as the script ends: by its uncaught exception; else by the last
    sys.exit, if the run was open then and logged nothing after it (an exit that was caught, and the script went
    on, does not count); else completed."""
    if _uncaught:
        return outcome(*_uncaught[-1])
    if _exits and _exits[-1][1].get(run) == run.last_step:
        return outcome(SystemExit, SystemExit(_exits[-1][0]), None)
    return "completed", None
