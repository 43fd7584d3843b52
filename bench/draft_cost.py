"""What journal drafts cost a run's ending, through a real worker: the same queue of small runs (tiny preset, with
evaluations, a reconstruction and a feature map, so every draft draws all four figures) with the worker's drafter
off (LAB_JOURNAL_DRAFTS=off) and on, one run after the other in one slot, measured in this run.

Per run: its ending → the next run's start (the worker reaps it, claims the next run and starts it: what drafting
must never delay), and, with drafting, its ending → its draft in the notebook. Median of N runs (default 10) with
the spread (min-max), and the difference and ratio on/off.

    .venv/bin/python bench/draft_cost.py [--runs 10]
Goal: a run's ending takes at most 1 s longer with drafting than without; the next run starts no later.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import with_overrides  # noqa: E402
from engine.presets import preset as preset_config  # noqa: E402
from lab_notes import Notebook  # noqa: E402
from tests.helpers import TINY, wait_for  # noqa: E402

ENDED = ("completed", "failed", "diverged", "stopped")
SETTINGS = [*TINY, "schedule.episodes=4", "schedule.eval_every=2", "schedule.image_every=2",
            "schedule.checkpoint_every=4", "schedule.final_eval_episodes=4"]


def queue_through_a_worker(drafting: bool, runs: int, folder: Path) -> tuple[list[float], list[float]]:
    """(ending → next start, ending → draft) in seconds for each run of a queue of `runs` + 1 (the last run only
    ends the queue: nothing starts after it)."""
    arm = "on" if drafting else "off"
    url = f"sqlite:///{folder / f'{arm}.db'}"
    config = with_overrides(preset_config("tiny"), SETTINGS).model_dump(mode="json")
    env = {**os.environ, "LAB_JOURNAL_DRAFTS": arm, "LAB_JOURNAL_LANGUAGE": "en"}
    with Notebook(url) as book:
        ids = [book.create_run(config, name=f"{arm} {i}", preset="tiny") for i in range(runs + 1)]
        with open(folder / f"worker-{arm}.log", "wb") as output:
            worker = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", url, "--runs-dir",
                                       str(folder / f"runs-{arm}")], cwd=ROOT, env=env, stdout=output,
                                      stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: all(book.get_run(i).status in ENDED for i in ids), 60 * (runs + 1), "every run to end",
                     every=0.5)
            if drafting:
                wait_for(lambda: all(book.list_notes(run_id=i) for i in ids), 120, "every draft", every=0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=120)
        done = [book.get_run(i) for i in ids]
        assert all(r.status == "completed" for r in done), [(r.id, r.status, r.status_reason) for r in done]
        turnaround = [(after.started_at - before.ended_at).total_seconds() for before, after in zip(done, done[1:])]
        to_draft = ([(book.list_notes(run_id=r.id)[0].created_at - r.ended_at).total_seconds() for r in done[:-1]]
                    if drafting else [])
        assert drafting or not book.list_notes(), "the drafter was off, yet drafts were written"
    for i, seconds in enumerate(turnaround):
        extra = f", its draft {to_draft[i]:.2f} s after its ending" if drafting else ""
        print(f"  drafting {arm}, run {i + 1}: next run started {seconds:.2f} s after its ending{extra}", flush=True)
    return turnaround, to_draft


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        off, _ = queue_through_a_worker(False, args.runs, Path(folder))
        on, to_draft = queue_through_a_worker(True, args.runs, Path(folder))
    base, with_drafts = statistics.median(off), statistics.median(on)
    print(f"ending → next run's start, {args.runs} runs: drafting off {spread(off)}; on {spread(on)}")
    print(f"with drafting the next run starts {with_drafts - base:+.2f} s later (ratio on/off "
          f"{with_drafts / base:.2f}); goal: at most +1 s")
    print(f"ending → its draft in the journal: {spread(to_draft)}")


if __name__ == "__main__":
    main()
