"""Chaos soak of a run's life: tiny runs through 2 workers while this process, at random and for a bounded time,
kill -9s run processes and workers (restarting the workers), stops, resumes and deletes runs, and marks runs
stale. Then it lets the queue drain, stops the workers, and checks what the notebook says against what is true:

    PRAGMA integrity_check ok · every run terminal (or running with a live process of its current attempt) ·
    each (run, key, step) stored at most once · no step written by two attempts · every completed run has each
    step exactly once · no id reused · no runs/ID folder without its run · a note for every diverged run ·
    no orphan process

    .venv/bin/python bench/lifecycle_soak.py                      # the full soak: 5 minutes, >= 100 runs
    .venv/bin/python bench/lifecycle_soak.py --seconds 25 --runs 10   # the size the test suite runs

Prints the counts of each action and `violations: N`; exits 1 when N > 0.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import jobs  # noqa: E402
from engine.config import with_overrides  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from lab_notes import FINAL_STATUSES, NotFound, Notebook, Refused  # noqa: E402

TINY = ["data.image_size=16", "data.samples_per_class=12", "data.n_way=3", "data.k_shot=2", "data.q_queries=2",
        "model.encoder.embed_dim=32", "model.encoder.depth=1", "model.encoder.num_heads=2",
        "model.decoders.embed_dim=32", "model.decoders.num_heads=2", "schedule.checkpoint_every=10",
        "schedule.eval_every=1000", "schedule.image_every=40"]
DIVERGING = "2022-12-14-negatives-infonce-diverges"
TERMINAL = (*FINAL_STATUSES, "deleted")
ACTIONS = {"kill_run": 2, "kill_worker": 1, "stop": 2, "resume": 4, "delete": 1, "stale": 2, "wait": 4}


class Soak:
    def __init__(self, folder: Path, workers: int, stale_after: float, seed: int) -> None:
        self.folder = folder
        self.url = f"sqlite:///{folder / 'notebook.db'}"
        self.runs_dir = folder / "runs"
        self.notebook = Notebook(self.url)
        self.rng = random.Random(seed)
        self.stale_after = stale_after
        self.workers: list[subprocess.Popen | None] = [None] * workers
        self.counts: Counter[str] = Counter()
        self.submitted: dict[int, str] = {}  # id -> the unique name it was given
        self.episodes: dict[int, int] = {}
        for slot in range(workers):
            self.start_worker(slot)

    # --- the actors ------------------------------------------------------------------------------------------

    def start_worker(self, slot: int) -> None:
        log = open(self.folder / f"worker{slot}.log", "ab")
        self.workers[slot] = subprocess.Popen(
            [sys.executable, "-m", "engine", "worker", "--runs-dir", str(self.runs_dir), "--stale-after",
             str(self.stale_after)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "LAB_NOTEBOOK_URL": self.url})

    def submit(self) -> None:
        diverging = self.rng.random() < 0.1
        episodes = 1000 if diverging else self.rng.randrange(20, 160)
        base = PRESETS[DIVERGING] if diverging else PRESETS["tiny"]
        extra = [] if diverging else [*TINY, f"schedule.episodes={episodes}"]
        cfg = with_overrides(base, extra)
        name = f"soak-{uuid.uuid4().hex[:8]}"
        run_id = jobs.submit(self.notebook, cfg, name=name, preset=DIVERGING if diverging else "tiny").run_id
        assert run_id not in self.submitted, f"id {run_id} handed out twice"
        self.submitted[run_id] = name
        self.episodes[run_id] = cfg.schedule.episodes
        self.counts["submits"] += 1

    def runs(self, *statuses: str):
        return [r for r in self.notebook.list_runs(status=list(statuses)) if r.id in self.submitted]

    def act(self) -> None:
        action = self.rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
        if action == "wait":
            return  # let runs get somewhere: completed runs are checked step by step at the end
        try:
            getattr(self, action)()
        except (Refused, NotFound):
            self.counts[f"{action} refused"] += 1  # the run moved on meanwhile: an honest answer

    def kill_run(self) -> None:
        live = [r for r in self.runs("running") if r.pid]
        if live:
            try:
                os.kill(self.rng.choice(live).pid, signal.SIGKILL)
                self.counts["run kills"] += 1
            except ProcessLookupError:
                pass

    def kill_worker(self) -> None:
        slot = self.rng.randrange(len(self.workers))
        worker = self.workers[slot]
        worker.kill()
        worker.wait()
        self.counts["worker kills"] += 1
        self.start_worker(slot)

    def stop(self) -> None:
        candidates = self.runs("queued", "running")
        if candidates:
            jobs.request_stop(self.notebook, self.rng.choice(candidates).id)
            self.counts["stops"] += 1

    def resume(self) -> None:
        candidates = self.runs("stopped", "failed", "diverged")
        if candidates:
            jobs.resume(self.notebook, self.rng.choice(candidates).id, self.runs_dir)
            self.counts["resumes"] += 1

    def delete(self) -> None:
        candidates = self.runs(*FINAL_STATUSES, "queued")
        if candidates:
            jobs.delete(self.notebook, self.rng.choice(candidates).id, self.runs_dir)
            self.counts["deletes"] += 1

    def stale(self) -> None:
        """A run whose heartbeat went quiet (a stalled host): the workers' sweep reaps it, its process must stop."""
        live = self.runs("running")
        if live:
            with self.notebook._writer.begin() as connection:
                connection.exec_driver_sql("UPDATE runs SET heartbeat_at = '2000-01-01 00:00:00.000000' "
                                           "WHERE id = ? AND status = 'running'", (self.rng.choice(live).id,))
            self.counts["marked stale"] += 1

    # --- the end ---------------------------------------------------------------------------------------------

    def drain(self, seconds: float) -> None:
        """No more chaos: let the queue finish (half the time), stop what still runs, then stop the workers."""
        deadline = time.monotonic() + seconds / 2
        while self.runs("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
        for run in self.runs("queued", "running"):
            try:
                jobs.request_stop(self.notebook, run.id)
            except Refused:
                pass
        deadline = time.monotonic() + seconds / 2
        while self.runs("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=90)
            except subprocess.TimeoutExpired:
                worker.kill()
        deadline = time.monotonic() + 20  # a run process outliving its worker fails itself and exits
        while our_run_processes(self.runs_dir) and time.monotonic() < deadline:
            time.sleep(0.2)

    def check(self) -> list[str]:
        problems = []
        self.notebook.flush()
        with self.notebook._reader.connect() as c:
            sql = c.exec_driver_sql
            if (verdict := sql("PRAGMA integrity_check").scalar()) != "ok":
                problems.append(f"integrity_check: {verdict}")
            for run_id, key, step, n in sql("SELECT run_id, key, step, COUNT(*) FROM metrics "
                                            "GROUP BY run_id, key, step HAVING COUNT(*) > 1 LIMIT 5"):
                problems.append(f"run {run_id}: {key} at step {step} stored {n} times")
            for run_id, step, n in sql("SELECT run_id, step, COUNT(DISTINCT attempt) FROM metrics GROUP BY "
                                       "run_id, step HAVING COUNT(DISTINCT attempt) > 1 LIMIT 5"):
                problems.append(f"run {run_id}: step {step} written by {n} attempts")
        stored = {r.id: r for r in self.notebook.list_runs(status=[*TERMINAL, "queued", "running"])}
        alive = our_run_processes(self.runs_dir)
        for run_id, name in self.submitted.items():
            run = stored.get(run_id)
            if run is None or run.name != name:
                problems.append(f"run {run_id}: id reused or lost (stored {run and run.name!r}, submitted {name!r})")
                continue
            if run.status not in TERMINAL and not (run.status == "running" and run.pid in alive):
                problems.append(f"run {run_id}: {run.status} with no live process of its attempt")
            if run.status == "completed":
                steps = self.notebook.metric_history(run_id, "loss/total")[0].tolist()
                if steps != list(range(1, self.episodes[run_id] + 1)):
                    problems.append(f"run {run_id}: completed with steps {summary(steps)}")
            if run.status == "diverged" and not self.notebook.list_notes(run_id=run_id):
                problems.append(f"run {run_id}: diverged without its journal note")
        for folder in self.runs_dir.iterdir() if self.runs_dir.is_dir() else ():
            if folder.is_dir() and (not folder.name.isdigit() or stored.get(int(folder.name)) is None
                                    or stored[int(folder.name)].status == "deleted"):
                problems.append(f"{folder}: a folder without its run")
        problems += [f"orphan process {pid}" for pid in alive
                     if not any(r.pid == pid and r.status == "running" for r in stored.values())]
        return problems


def our_run_processes(runs_dir: Path) -> set[int]:
    """Run processes (engine run-child) working under `runs_dir`, found in /proc."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "status").read_text()
        except OSError:
            continue
        if b"run-child" in argv and str(runs_dir).encode() in argv and "zombie" not in state.lower():
            found.add(int(proc.name))
    return found


def summary(steps: list[int]) -> str:
    return f"{len(steps)} points, first {steps[:3]}, last {steps[-3:]}" if steps else "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300, help="how long the chaos lasts")
    parser.add_argument("--runs", type=int, default=110, help="runs submitted over the chaos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--stale-after", type=float, default=6.0, help="the workers' stale-heartbeat threshold")
    parser.add_argument("--drain", type=float, default=120, help="seconds the queue gets to drain at the end")
    parser.add_argument("--pace", type=float, default=0.9, help="mean seconds between two chaos actions")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lifecycle-soak-") as tmp:
        soak = Soak(Path(tmp), args.workers, args.stale_after, args.seed)
        try:
            deadline = started + args.seconds
            while time.monotonic() < deadline:
                elapsed = (time.monotonic() - started) / args.seconds
                while soak.counts["submits"] < min(args.runs, int(args.runs * elapsed) + 2):
                    soak.submit()
                soak.act()
                time.sleep(soak.rng.uniform(0.2, 2 * args.pace - 0.2))
            while soak.counts["submits"] < args.runs:
                soak.submit()
        finally:
            soak.drain(args.drain)
        problems = soak.check()
        statuses = Counter(r.status for r in soak.notebook.list_runs(status=[*TERMINAL, "queued", "running"]))
        soak.notebook.close()
    print(f"lifecycle soak: {args.seconds:g} s of chaos (an action every ~{args.pace:g} s), "
          f"{time.monotonic() - started:.0f} s in all, {args.workers} workers, stale after {args.stale_after:g} s")
    print("actions: " + ", ".join(f"{k} {v}" for k, v in sorted(soak.counts.items())))
    print("runs by status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    for problem in problems:
        print(f"VIOLATION: {problem}")
    print(f"violations: {len(problems)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
