"""`python -m engine launch … -- COMMAND…` (queue a script run) and `python -m engine import-tensorboard LOGDIR`
(existing TensorBoard logs as runs). Registered by `engine.cli.build_parser`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from engine.script_job import parse_env, validate_script
from lab_notes import Notebook
from lab_notes.client_values import MAX_NAME_CHARS, checked_text

Command = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _launch(args: argparse.Namespace) -> int:
    from engine import jobs

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    values: dict[str, Any] = {"command": command, "workdir": str(Path(args.workdir).resolve()),
                              "env": parse_env(args.env), "tensorboard": args.tensorboard,
                              "runtime": {"executor": args.executor, "processes": args.processes}}
    job = validate_script(values)
    with Notebook(args.db) as notebook:
        name = checked_text("--name", args.name, MAX_NAME_CHARS) if args.name else " ".join(command)[:MAX_NAME_CHARS]
        submitted = jobs.submit_script(notebook, job, name=name)
        if not jobs.live_workers(notebook):
            print("no live worker: start one with `python -m engine worker`", file=sys.stderr)
    print(submitted.run_id)
    return 0


def _import_tensorboard(args: argparse.Namespace) -> int:
    from engine.tensorboard_feed import import_logdir

    with Notebook(args.db) as notebook:
        result = import_logdir(notebook, Path(args.logdir), prefix=args.name or "")
    for run_id, folder in result.made:
        print(f"run {run_id}: imported {folder}")
    for run_id, folder in result.skipped:
        print(f"run {run_id}: {folder} was imported before (or is being imported now); skipped")
    for problem in result.unreadable:
        print(f"unreadable: {problem}", file=sys.stderr)
    if not result.made and not result.skipped:
        print(f"no TensorBoard event files under {args.logdir}", file=sys.stderr)
        return 1
    return 0


def add_launch_commands(command: Command, with_db: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]
                        ) -> None:
    """The two subcommands, on `engine.cli`'s parser."""
    launch = with_db(command("launch", _launch, "queue a run whose job is your own command (after --)"))
    launch.add_argument("--name", help="run name (default: the command)")
    launch.add_argument("--executor", choices=["local", "slurm"], default="local",
                        help="a process of the worker's machine, or a Slurm job")
    launch.add_argument("--processes", type=int, default=1, help="copies of the command (RANK, WORLD_SIZE set)")
    launch.add_argument("--tensorboard", help="the logdir the script writes (TENSORBOARD_LOGDIR; default: a "
                                              "folder in the run's artifact folder)")
    launch.add_argument("--workdir", default=".", help="working folder, under $LAB_CODE_DIR (default: here)")
    launch.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the script (repeatable)")
    launch.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command, e.g. -- python train.py")
    imported = with_db(command("import-tensorboard", _import_tensorboard,
                               "import TensorBoard logs: one run per run folder, once"))
    imported.add_argument("logdir")
    imported.add_argument("--name", default="", help="a prefix for the imported runs' names")
