"""A search against a grid on the same small preset (the negatives-only InfoNCE, tiny size), both run by a real
worker (two runs at once) on a temporary notebook, in this one process's run:

- grid: lr x tau, GRID x GRID runs, each to the end;
- search: TPE with median pruning over the same ranges, a budget of TRIALS trials, a few rounds (seeds).

Held-out accuracy is the end-of-run few-shot report's prototype judge (`eval/prototype`); training steps are the
last step each run logged, summed (a pruned or diverged run counts the steps it took).

    .venv/bin/python bench/search_vs_grid.py [--grid 5] [--trials 9] [--rounds 3] [--episodes 120]
Required: in the median round, search best >= grid best - 0.02 while search steps / grid steps <= 1/3.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PRESET = "2022-12-14-negatives-infonce-diverges"
LR, TAU = (1e-4, 3e-2), (0.1, 1.0)


def config(episodes: int):
    from engine.presets import PRESETS
    from tests.helpers import tiny

    return tiny(PRESETS[PRESET], f"schedule.episodes={episodes}", f"schedule.eval_every={max(1, episodes // 6)}",
                "schedule.eval_episodes=20", "schedule.final_eval_episodes=1000", "schedule.image_every=100000",
                "schedule.checkpoint_every=100000", "data.samples_per_class=20")


def grid_points(n: int) -> tuple[list[float], list[float]]:
    lrs = [math.exp(math.log(LR[0]) + i * (math.log(LR[1]) - math.log(LR[0])) / (n - 1)) for i in range(n)]
    taus = [TAU[0] + i * (TAU[1] - TAU[0]) / (n - 1) for i in range(n)]
    return [float(f"{v:.3g}") for v in lrs], [round(v, 3) for v in taus]


def measured(notebook, run_ids: list[int]) -> tuple[float, int]:
    """(best held-out prototype accuracy, total training steps) over `run_ids`."""
    from engine.search import objective_value

    best, steps = -1.0, 0
    for run_id in run_ids:
        logged = notebook.metric_history(run_id, "loss/total")[0]
        steps += int(logged[-1]) if len(logged) else 0
        value = objective_value(notebook, run_id, "eval/prototype") if notebook.get_run(run_id).status == "completed" else None
        best = max(best, value if value is not None else -1.0)
    return best, steps


def run_to_the_end(notebook, url: str, runs_dir: Path, done) -> float:
    """Start a worker (two at once) until `done()`; returns the wall seconds."""
    from tests.helpers import stop_processes, wait_for

    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", url, "--runs-dir", str(runs_dir),
                               "--max-parallel", "2"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for(done, 3600, "the runs to end", every=0.5)
    finally:
        stop_processes([worker])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=int, default=5, help="values per field (the grid has this squared runs)")
    parser.add_argument("--trials", type=int, default=9, help="the search's budget (the grid runs 25)")
    parser.add_argument("--rounds", type=int, default=3, help="search rounds (seeds); the grid runs once")
    parser.add_argument("--episodes", type=int, default=120)
    args = parser.parse_args()

    from engine import jobs
    from engine.search import submit_search
    from engine.search_space import search_settings
    from lab_notes import Notebook

    cfg = config(args.episodes)
    lrs, taus = grid_points(args.grid)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/notebook.db"
        notebook = Notebook(url)
        grid = jobs.submit_sweep(notebook, cfg, {"optim.lr": lrs, "loss.temperature": taus}, "grid", name="grid",
                                 preset=PRESET)
        final = ("completed", "diverged", "failed", "stopped")
        grid_seconds = run_to_the_end(notebook, url, Path(folder) / "runs",
                                      lambda: all(notebook.get_run(i).status in final for i in grid.run_ids))
        grid_best, grid_steps = measured(notebook, grid.run_ids)
        print(f"grid {args.grid}x{args.grid}: best held-out accuracy {grid_best:.4f}, {grid_steps} steps, "
              f"{grid_seconds:.0f} s", flush=True)
        rounds = []
        for seed in range(args.rounds):
            settings = search_settings(cfg, [f"optim.lr={LR[0]}:{LR[1]}:log", f"loss.temperature={TAU[0]}:{TAU[1]}"],
                                       "eval/prototype:max", trials=args.trials, parallel=2, sampler="tpe",
                                       pruner="median", seed=seed)
            sweep_id = submit_search(notebook, cfg, settings, name=f"search {seed}", preset=PRESET)
            seconds = run_to_the_end(notebook, url, Path(folder) / "runs",
                                     lambda: notebook.get_search(sweep_id).settings.get("done"))
            run_ids = notebook.get_sweep(sweep_id).run_ids
            best, steps = measured(notebook, run_ids)
            pruned = sum((notebook.get_run(i).status_reason or "").startswith("pruned at") for i in run_ids)
            rounds.append((best, steps))
            print(f"search round {seed}: best {best:.4f} ({best - grid_best:+.4f} vs grid), {steps} steps "
                  f"(ratio {steps / grid_steps:.3f}), {len(run_ids)} trials, {pruned} pruned, {seconds:.0f} s",
                  flush=True)
        notebook.close()
    gaps = [grid_best - best for best, _ in rounds]
    ratios = [steps / grid_steps for _, steps in rounds]
    gap, ratio = statistics.median(gaps), statistics.median(ratios)
    print(f"median over {len(rounds)} rounds: accuracy gap to the grid's best {gap:+.4f} "
          f"(spread {min(gaps):+.4f}..{max(gaps):+.4f}); steps ratio search/grid {ratio:.3f} "
          f"(spread {min(ratios):.3f}..{max(ratios):.3f})")
    ok = gap <= 0.02 and ratio <= 1 / 3
    print(("PASS" if ok else "FAIL") + ": within 0.02 of the grid's best with at most a third of its steps")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
