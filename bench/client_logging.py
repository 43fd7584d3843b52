"""The tracking client's cost, each figure against a baseline measured in this run, round by round (a noisy shared
machine slows each alike):

1. `run.log` of single points (one key a call), until every point is written and the run has ended, against raw
   `sqlite3.executemany` of the same rows into the notebook's own `metrics` layout in batches of 1000.
   Required: >= 100,000 points/s (median over rounds); the ratio to raw is printed.
2. A tight training loop (a tiny torch MLP step: forward, backward, SGD) that logs its loss every step, against
   the same loop with logging off (the line deleted), alternating in segments within each round; the logging side
   pays for writing all it logged. Required: the median slowdown <= 2 %. Two more loops alternate with them, so
   that what is left of the 2 % shows: a logger that does nothing (the call site alone: the loss read to the host
   and a call with a dict), and one that only appends each point to a deque (the least that keeps it).

    .venv/bin/python bench/client_logging.py [--points 200000] [--steps 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from metrics_ingest import raw_executemany, rows_for  # noqa: E402

from lab_notes import Notebook, start_run  # noqa: E402

os.environ.pop("LAB_RUN_ID", None)  # always a run of its own, even from inside a launched job


def client_single_points(url: str, points: int) -> tuple[float, int]:
    """(points/s, run id): one `run.log` call per point, the clock stopped once all are written and the run ended."""
    keys = [f"metric/{k}" for k in range(4)]
    run = start_run(name="bench", url=url)
    log = run.log
    started = time.perf_counter()
    for i in range(points):
        log({keys[i % 4]: i * 0.5}, step=i // 4)
    run.finish()
    elapsed = time.perf_counter() - started
    assert run.unwritten == 0 and run.status == "completed"
    return points / elapsed, run.id


def throughput_round(folder: Path, points: int) -> tuple[float, float]:
    """(raw executemany, client) points/s, each into a fresh database; the stored count checked."""
    folder.mkdir()
    url = f"sqlite:///{folder}/client.db"
    client, run_id = client_single_points(url, points)
    raw = raw_executemany(folder / "raw.db", rows_for(run_id, points))
    with Notebook(url) as notebook:
        stored = sum(len(notebook.metric_history(run_id, f"metric/{k}")[0]) for k in range(4))
    assert stored == points, f"stored {stored:,} of {points:,} points"
    return raw, client


class TinyStep:
    """One step of a tiny MLP (32 -> 64 -> 10, batch 32): forward, cross-entropy, backward, SGD."""

    def __init__(self) -> None:
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
        self.optimiser = torch.optim.SGD(self.model.parameters(), lr=0.01)
        self.features, self.labels = torch.randn(32, 32), torch.randint(0, 10, (32,))

    def __call__(self):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.features), self.labels)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return loss


def loop_off(step: TinyStep, steps: int, first: int = 0) -> float:
    """Seconds for `steps` steps, nothing logged."""
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - started


def loop_on(step: TinyStep, steps: int, run, first: int) -> float:
    """Seconds for `steps` steps that log their loss each step, and then for writing what is still waiting (so
    the side that logs pays for all of its writes, and none leak into the other side)."""
    log = run.log
    started = time.perf_counter()
    for index in range(first, first + steps):
        log({"loss": step().item()}, step=index)
    run.flush()
    return time.perf_counter() - started


class LoggerThatDoesNothing:
    def log(self, values, step=None) -> None:
        pass

    def flush(self) -> None:
        pass


class LoggerThatAppends(LoggerThatDoesNothing):
    """The least a logger can do to keep a point: one tuple of the call on a deque, nothing written."""

    def __init__(self) -> None:
        self.kept: collections.deque = collections.deque()

    def log(self, values, step=None) -> None:
        self.kept.append((step, tuple(values.items()), time.time()))

    def flush(self) -> None:
        self.kept.clear()


def overhead_round(url: str, steps: int, pairs: int = 10) -> dict[str, float]:
    """Slowdown over logging off for run.log and the two reference loggers: `steps` steps of each loop, as `pairs`
    segments of each in a shuffled order per pair (a neighbour's burst on a shared machine lands on each alike)."""
    step = TinyStep()
    loop_off(step, 200)  # warm up: first-call costs belong to no side
    segment = steps // pairs
    with start_run(name="tight loop", url=url) as run:
        loops = {"off": loop_off, "run.log": partial(loop_on, run=run),
                 "does nothing": partial(loop_on, run=LoggerThatDoesNothing()),
                 "appends": partial(loop_on, run=LoggerThatAppends())}
        loops["run.log"](step, 200, first=0)
        seconds = dict.fromkeys(loops, 0.0)
        order = random.Random(0)
        for pair in range(pairs):
            first = 200 + pair * segment
            for name in order.sample(list(loops), len(loops)):
                seconds[name] += loops[name](step, segment, first=first)
    return {name: seconds[name] / seconds["off"] - 1 for name in loops if name != "off"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)  # one core for the loop: the notebook's writer thread may use another
    print(f"1. run.log of single points: {args.points:,} points a round, {args.rounds} rounds")
    throughput = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            raw, client = throughput_round(Path(folder) / f"t{round_}", args.points)
            throughput.append((client, client / raw))
            print(f"   round {round_ + 1}: raw executemany {raw:10,.0f}  run.log {client:10,.0f} points/s "
                  f"({client / raw:.2f} x raw)")
        print(f"2. tight loop (MLP 32-64-10, batch 32, torch on 1 thread), {args.steps:,} steps a side, "
              f"{args.rounds} rounds")
        slowdowns: dict[str, list[float]] = collections.defaultdict(list)
        for round_ in range(args.rounds):
            for name, value in overhead_round(f"sqlite:///{folder}/loop{round_}.db", args.steps).items():
                slowdowns[name].append(value)
            print(f"   round {round_ + 1}: slowdown over logging off: " + ", ".join(
                f"{name} {values[-1] * 100:+.2f} %" for name, values in slowdowns.items()))
    rates, to_raw = [r[0] for r in throughput], [r[1] for r in throughput]
    rate = statistics.median(rates)
    print(f"median run.log = {rate:,.0f} points/s (spread {min(rates):,.0f}..{max(rates):,.0f}), "
          f"{statistics.median(to_raw):.2f} x raw executemany; required >= 100,000 points/s")
    for name, values in slowdowns.items():
        print(f"median tight-loop slowdown, {name:12s} = {statistics.median(values) * 100:+.2f} % (spread "
              f"{min(values) * 100:+.2f}..{max(values) * 100:+.2f} %)" + ("; required <= 2 %" if name == "run.log"
                                                                          else ""))
    slowdown = statistics.median(slowdowns["run.log"])
    ok = rate >= 100_000 and slowdown <= 0.02
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
