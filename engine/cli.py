"""`python -m engine …`: presets, training into a folder, and background jobs through the notebook."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from data import DatasetError
from engine.cli_launch import add_launch_commands
from engine.config import ConfigError, Problem, validate_config, with_overrides
from engine.lint import lint
from engine.presets import PRESET_INFO, preset
from engine.hosts import this_host_id
from engine.journal_cli import register as register_journal
from engine.provenance import collect_provenance, keep_diff
from engine.cli_search import add_search_options, is_search, search_command
from engine.sweeps import Mode, parse_field
from lab_notes import Notebook, NotFound
from lab_notes.artifacts import artifact_root
from lab_notes.backup import BackupError, backup, backup_into, restore
from lab_notes.db import apply_umask
from lab_notes.store import default_url


def _print_presets(args: argparse.Namespace) -> int:
    width = max(len(name) for name in PRESET_INFO)
    for info in PRESET_INFO.values():
        print(f"{info.name:<{width}}  {info.journal_date or '—':<10}  {info.summary}")
        print(f"{'':<{width}}  {'':<10}  trains: {info.trains}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from engine.distributed import launcher_rank  # torch loads only when training
    from engine.sinks import JsonlSink, NullSink, ProgressSink
    from engine.train import train

    cfg = with_overrides(preset(args.preset), args.set)
    out = Path(args.out)
    if launcher_rank() != 0:  # one of a launcher's ranks (torchrun, Slurm): rank 0 alone writes the folder
        return 0 if train(cfg, NullSink()).status in ("completed", "stopped") else 3
    for warning in lint(cfg):
        print(f"lint: {warning}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    (out / "provenance.json").write_text(json.dumps(keep_diff(collect_provenance(), out / "provenance.diff"),
                                                    indent=1))
    (out / "STOP").unlink(missing_ok=True)
    files = JsonlSink(out)
    progress = ProgressSink(files, cfg.schedule.episodes)
    resume_from = out / "checkpoints" if args.resume else None
    try:
        result = train(cfg, progress, resume_from=resume_from, run_dir=out)
    finally:
        progress.close()
        files.close()
    print(f"{result.status} at step {result.step}; metrics in {out / 'metrics.jsonl'}")
    if result.report:
        print(f"divergence: {result.report['reason']} at step {result.report['first_step']} "
              f"(policy {result.report['policy']}); report in {out / 'status.json'}")
        overflow = result.report["incidents"][0]["diagnostics"].get("overflow")
        if overflow:
            print(f"why: {overflow['explanation']}")
    if result.status == "completed" and cfg.schedule.final_eval_episodes:
        print(few_shot_summary(json.loads((out / "eval.json").read_text()), out / "eval.json"))
    return 0 if result.status in ("completed", "stopped") else 3


def few_shot_summary(report: dict, path: Path) -> str:
    """One line of the end-of-run report: each judge's held-out accuracy ± 95 % interval, and the seen-class gap."""
    held = ", ".join(f"{judge} {v['mean']:.3f} ± {v['ci95']:.3f}" for judge, v in report["accuracy"].items())
    line = (f"few-shot on {report['judged_on']} ({report['n_way']}-way {report['k_shot']}-shot, {report['episodes']} "
            f"episodes): {held}")
    if report.get("seen_classes"):
        line += f"; seen classes: prototype {report['seen_classes']['prototype']['mean']:.3f}"
    line += f" (all of it in {path})"
    if report["features"]["collapsed"]:
        line += f"\nwarning: held-out features collapsed: {report['features']['collapse_reason']}"
    return line


def _submit(args: argparse.Namespace) -> int:
    from engine import jobs

    cfg = with_overrides(preset(args.preset), args.set)
    with Notebook(args.db) as notebook:
        submitted = jobs.submit(notebook, cfg, name=args.name or args.preset, preset=args.preset)
        for warning in submitted.warnings:
            print(f"lint: {warning}", file=sys.stderr)
        if not jobs.live_workers(notebook):
            print("no live worker: start one with `python -m engine worker`", file=sys.stderr)
    print(submitted.run_id)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from engine import jobs

    if is_search(args):
        return search_command(args)
    if bool(args.grid) == bool(args.list):
        raise ConfigError([Problem("sweep", "give --grid fields (every combination) or --list fields (values "
                                            "taken together), not both")])
    mode: Mode = "grid" if args.grid else "list"
    fields = dict(parse_field(spec) for spec in args.grid or args.list)
    cfg = with_overrides(preset(args.preset), args.set)
    with Notebook(args.db) as notebook:
        submitted = jobs.submit_sweep(notebook, cfg, fields, mode, name=args.name or args.preset,
                                      preset=args.preset)
        if not jobs.live_workers(notebook):
            print("no live worker: start one with `python -m engine worker`", file=sys.stderr)
    print(f"sweep {submitted.sweep_id}: runs {' '.join(map(str, submitted.run_ids))}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from engine import jobs

    with Notebook(args.db) as notebook:
        print(jobs.request_stop(notebook, args.run))
    return 0


def _resume(args: argparse.Namespace) -> int:
    from engine import jobs

    with Notebook(args.db) as notebook:
        step = jobs.resume(notebook, args.run)
    print(f"run {args.run}: queued to resume from " + (f"step {step}" if step else "the start (no checkpoint)"))
    return 0


def _delete(args: argparse.Namespace) -> int:
    from engine import jobs

    with Notebook(args.db) as notebook:
        jobs.delete(notebook, args.run, Path(args.runs_dir))
    print(f"run {args.run}: deleted, with its metrics, images, checkpoints and folder")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Reads only: a run whose heartbeat is stale is shown so; a worker's sweep is what marks it failed."""
    from engine.worker import STALE_AFTER_SECONDS

    with Notebook(args.db) as notebook:
        clock = notebook.database_time()

        def silence(run) -> str:
            if run.status != "running" or run.heartbeat_at is None:
                return ""
            age = (clock - run.heartbeat_at).total_seconds()
            return f"no heartbeat for {age:.0f} s" if age > STALE_AFTER_SECONDS else ""

        if args.run is not None:
            run = notebook.get_run(args.run)
            latest = notebook.latest_metrics(run.id)
            print(json.dumps({"id": run.id, "name": run.name, "preset": run.preset, "status": run.status,
                              "attempt": run.attempt, "reason": run.status_reason or silence(run) or None,
                              "stop_requested": run.stop_requested, "device": run.device,
                              "exit_code": run.exit_code, "step": max((s for s, _ in latest.values()), default=0),
                              "loss": latest.get("loss/total", (None, None))[1],
                              "divergence": (run.divergence_report or {}).get("reason")}, indent=2, default=str))
            return 0
        workers = notebook.live_workers(STALE_AFTER_SECONDS)
        print(f"{len(workers)} live worker(s)")
        for worker in workers:
            print(f"  host {worker.host}: {worker.id} ({worker.max_parallel} slot(s), GPUs: "
                  f"{', '.join(worker.gpus) or 'none'})")
        for run in notebook.list_runs():
            latest = notebook.latest_metrics(run.id)
            step = max((s for s, _ in latest.values()), default=0)
            reason = run.status_reason or silence(run) or (run.placement_in_words if run.status == "queued" else "")
            print(f"{run.id:>5}  {run.status:<9}  step {step:>7}  {run.name[:40]:<40}  {reason}")
    return 0


def _worker(args: argparse.Namespace) -> int:
    from engine.hosts import ArtifactRootUnavailable
    from engine.worker import Worker

    # A shared root ($LAB_ARTIFACT_ROOT, --artifact-root) must be there already: missing, it is not mounted on
    # this host. The older local runs folder (--runs-dir, $LAB_RUNS_DIR, ./runs) is made when missing.
    shared = args.artifact_root or (None if args.runs_dir else os.environ.get("LAB_ARTIFACT_ROOT"))
    root = shared or args.runs_dir or os.environ.get("LAB_RUNS_DIR") or "runs"
    try:
        worker = Worker(args.db, max_parallel=args.max_parallel, runs_dir=root, create_runs_dir=not shared,
                        stale_after=args.stale_after, launcher=args.launcher, host_id=args.host_id)
    except ArtifactRootUnavailable as error:
        print(f"worker: {error}", file=sys.stderr)
        return 2
    worker.serve(exit_when_idle=args.exit_when_idle)
    return 0


def _backup(args: argparse.Namespace) -> int:
    target = Path(args.to)
    if target.is_dir() or args.to.endswith("/"):
        made = backup_into(args.db, target, keep=args.keep)
    else:
        made = backup(args.db, target)
    rows = ", ".join(f"{n:,} {table}" for table, n in made.rows.items() if n)
    print(f"backed up to {made.path} ({rows}); manifest {made.manifest}: {made.artifacts} artifact file(s) "
          f"referred to, {made.missing} not found on this host")
    return 0


def _restore(args: argparse.Namespace) -> int:
    restore(args.source, args.db, replace=args.replace)
    with Notebook(args.db) as notebook:  # opens (and upgrades) what was restored, so a bad file fails here, now
        print(f"restored {args.source} as {args.db}: {len(notebook.list_runs())} runs")
    return 0


def _run_child(args: argparse.Namespace) -> int:
    from engine.run_process import run_one
    from lab_notes import Attempt

    return run_one(args.db, Attempt(args.run, args.attempt, args.token), args.runs_dir, args.worker_pid)


def _rank(args: argparse.Namespace) -> int:
    """One of ranks 1..N-1 that a run's rank 0 started (`engine.distributed`); its config comes on stdin."""
    from engine.distributed import exit_when_orphaned
    from engine.sinks import NullSink
    from engine.train import train

    exit_when_orphaned(args.parent_pid)
    cfg = validate_config(json.loads(sys.stdin.read()))
    train(cfg, NullSink())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler, help_: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_)
        sub.set_defaults(handler=handler)
        return sub

    def with_db(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--db", default=default_url(),
                         help="notebook URL (default: $LAB_NOTEBOOK_URL, else sqlite ./notebook.db)")
        return sub

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--preset", required=True, help="preset name (see `presets`)")
        sub.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                         help="override a config field, e.g. --set optim.lr=0.01 (repeatable)")

    command("presets", _print_presets, "list the presets with their journal date")
    train = command("train", _train, "train a preset into a folder (metrics.jsonl, images, checkpoints)")
    with_config(train)
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    submit = with_db(command("submit", _submit, "validate, lint and queue a run; prints its id"))
    with_config(submit)
    submit.add_argument("--name", help="run name (default: the preset's)")
    sweep = with_db(command("sweep", _sweep, "queue a grid or list of runs over up to three fields"))
    with_config(sweep)
    sweep.add_argument("--grid", action="append", metavar="PATH=V1,V2", help="swept field, every combination "
                                                                               "(repeatable, up to 3)")
    sweep.add_argument("--list", action="append", metavar="PATH=V1,V2", help="swept field, values taken together "
                                                                               "(repeatable, up to 3)")
    sweep.add_argument("--name", help="sweep name (default: the preset's); each run is named by its values")
    add_search_options(sweep)
    for name, handler, help_ in (("stop", _stop, "ask a run to stop at its next step, with a checkpoint"),
                                 ("resume", _resume, "queue a stopped, failed or diverged run to continue from its "
                                                     "last checkpoint")):
        with_db(command(name, handler, help_)).add_argument("run", type=int)
    delete = with_db(command("delete", _delete, "delete a run that is not running, with its data and folder"))
    delete.add_argument("run", type=int)
    delete.add_argument("--runs-dir", default=str(artifact_root()),
                        help="the artifact root (default: $LAB_ARTIFACT_ROOT, else $LAB_RUNS_DIR, else ./runs)")
    with_db(command("status", _status, "runs and workers, or one run")).add_argument("run", type=int, nargs="?")
    backup_cmd = with_db(command("backup", _backup, "a consistent copy of the notebook while runs write, with a "
                                                    "manifest of the artifact files it refers to"))
    backup_cmd.add_argument("--to", required=True, help="a file, or a folder for timestamped backups")
    backup_cmd.add_argument("--keep", type=int, default=7, help="in a folder, keep only the newest N backups")
    restore_cmd = with_db(command("restore", _restore, "put a backup back as the notebook at --db"))
    restore_cmd.add_argument("--from", dest="source", required=True, help="the backup file")
    restore_cmd.add_argument("--replace", action="store_true", help="overwrite an existing SQLite notebook file")
    worker = with_db(command("worker", _worker, "claim and run queued runs until SIGTERM/Ctrl-C"))
    worker.add_argument("--max-parallel", type=int, default=1, help="runs at once on CPU (GPU: one per GPU)")
    worker.add_argument("--artifact-root", help="the shared folder where checkpoints and output logs go, as this "
                        "host mounts it; it must exist (default: $LAB_ARTIFACT_ROOT)")
    worker.add_argument("--runs-dir", help="the older, local name for it, made when missing (default: "
                        "$LAB_RUNS_DIR, else ./runs, when no artifact root is set)")
    worker.add_argument("--host-id", default=this_host_id(),
                        help="this host's name in the notebook: runs pinned with runtime.host go to the workers "
                             "of that host id (default: $LAB_HOST_ID, else the hostname)")
    worker.add_argument("--stale-after", type=float, default=15.0,
                        help="seconds without a heartbeat before a running run is marked failed")
    worker.add_argument("--exit-when-idle", action="store_true", help="exit once nothing is queued or running")
    worker.add_argument("--launcher", choices=["warm", "cold"], default="warm",
                        help="warm: fork each run from a process that has imported torch and the engine already "
                             "(first point in about a second); cold: a fresh interpreter per run")
    child = with_db(command("run-child", _run_child, argparse.SUPPRESS))
    child.add_argument("run", type=int)
    child.add_argument("--attempt", type=int, required=True)
    child.add_argument("--token", required=True)
    child.add_argument("--runs-dir", default="runs")
    child.add_argument("--worker-pid", type=int, help="exit when this worker is no longer the parent")
    register_journal(commands, with_db)
    add_launch_commands(command, with_db)
    rank = command("rank", _rank, argparse.SUPPRESS)
    rank.add_argument("--parent-pid", type=int, required=True, help="rank 0's process: exit when it is gone")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        apply_umask()  # before any file: notebook, backups, logs and checkpoints are the owner's (LAB_UMASK)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DatasetError, NotFound, FileNotFoundError, ValueError, BackupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
