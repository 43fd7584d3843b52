"""The tracking client's cost, each figure against a baseline measured in this run, round by round (a noisy shared
machine slows each alike):

1. `run.log` of single points (one key a call), until every point is written and the run has ended, against raw
   `sqlite3.executemany` of the same rows into the notebook's own `metrics` layout in batches of 1000.
   Required: >= 100,000 points/s (median over rounds); the ratio to raw is printed.
2. A tight training loop (a tiny torch MLP step: forward, backward, SGD) that logs its loss every step, against
   the same loop with logging off (the line deleted), alternating in segments within each round; the logging side
   pays for writing all it logged. Required: the median slowdown <= 2 %. Two more loops alternate with them, so
   that what is left of the 2 % shows: a logger that does nothing (the call site alone: the loss read to the host
   and a call with a dict), and one that only appends each point to a deque (the least that keeps it). A fifth
   is logging off again, so each run prints its own noise: the slowdown of a loop against itself.
   Each loop's extra time is printed in microseconds a step as well. It does not carry over to another step
   length: it grows with the step (run.log measured 16 us a step at 0.2 ms, 21 us at 0.64 ms, 44 us at 1 ms). The
   cause is not pinned down: a longer step evicts more of the logger's code and data from the caches, and the
   background writer's work per step grows with it. Measure at your own step's length with --width, or on a
   journal preset's own training step with --preset (its model, optimiser and episodes, as the bare loop of
   `bench/train_overhead.py` draws them; 2,000 steps a side by default): the journal's smallest experiment,
   2022-12-08-disc-vit1, steps in about 4.5 ms here on one thread.

    .venv/bin/python bench/client_logging.py [--points 200000] [--steps 20000] [--rounds 7] [--width 64]
    .venv/bin/python bench/client_logging.py --preset 2022-12-08-disc-vit1 [--steps 2000] [--rounds 5]
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
from typing import Callable

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
    """One step of a tiny MLP (32 -> `width` -> 10, batch 32): forward, cross-entropy, backward, SGD."""

    def __init__(self, width: int = 64) -> None:
        import torch

        torch.manual_seed(0)
        self.torch = torch
        self.model = torch.nn.Sequential(torch.nn.Linear(32, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))
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


def loop_on(step: TinyStep, steps: int, run, first: int, flushes: list[float] | None = None) -> float:
    """Seconds for `steps` steps that log their loss each step, and then for writing what is still waiting (so
    the side that logs pays for all of its writes, and none leak into the other side); that last part's seconds
    are added to `flushes`."""
    log = run.log
    started = time.perf_counter()
    for index in range(first, first + steps):
        log({"loss": step().item()}, step=index)
    looped = time.perf_counter()
    run.flush()
    ended = time.perf_counter()
    if flushes is not None:
        flushes.append(ended - looped)
    return ended - started


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


def overhead_round(url: str, steps: int, make_step: Callable, seed: int,
                   pairs: int = 20) -> tuple[dict[str, float], dict[str, float]]:
    """(slowdown over logging off, extra microseconds a step) for run.log and the two reference loggers, and the
    microseconds a step of the step itself ("off") and of run.log's flushes at segment ends ("flushes"). `steps`
    steps of each loop, as `pairs` segments of each, in an order shuffled per pair (a neighbour's burst on a shared
    machine lands on each alike) and per round by `seed` (with one order for every round, a place in it that
    favours one loop would favour it in every round)."""
    step = make_step()
    loop_off(step, 200)  # warm up: first-call costs belong to no side
    segment = steps // pairs
    with start_run(name="tight loop", url=url) as run:
        flushes: list[float] = []
        loops: dict[str, Callable[..., float]] = {
            "off": loop_off, "off again": loop_off, "run.log": partial(loop_on, run=run, flushes=flushes),
            "does nothing": partial(loop_on, run=LoggerThatDoesNothing()),
            "appends": partial(loop_on, run=LoggerThatAppends())}
        loops["run.log"](step, 200, first=0)
        flushes.clear()
        seconds = dict.fromkeys(loops, 0.0)
        order = random.Random(seed)
        for pair in range(pairs):
            first = 200 + pair * segment
            for name in order.sample(list(loops), len(loops)):
                seconds[name] += loops[name](step, segment, first=first)
    slowdown = {name: seconds[name] / seconds["off"] - 1 for name in loops if name != "off"}
    microseconds = {name: (seconds[name] - seconds["off"]) / steps * 1e6 for name in slowdown}
    return slowdown, {**microseconds, "off": seconds["off"] / steps * 1e6, "flushes": sum(flushes) / steps * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--steps", type=int, help="steps of each loop a round (default 20,000; 2,000 with --preset)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--width", type=int, default=64, help="the MLP's hidden width: wider, a longer step")
    parser.add_argument("--preset", help="loop a journal preset's training step instead of the MLP's")
    args = parser.parse_args()
    import torch

    if args.preset:
        from engine.presets import PRESETS
        from train_overhead import bare_step

        make_step: Callable = partial(bare_step, PRESETS[args.preset])
        looped, args.steps = f"preset {args.preset}'s training step", args.steps or 2_000
    else:
        make_step = partial(TinyStep, args.width)
        looped, args.steps = f"MLP 32-{args.width}-10, batch 32", args.steps or 20_000

    torch.set_num_threads(1)  # one core for the loop: the notebook's writer thread may use another
    print(f"1. run.log of single points: {args.points:,} points a round, {args.rounds} rounds")
    throughput = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            raw, client = throughput_round(Path(folder) / f"t{round_}", args.points)
            throughput.append((client, client / raw))
            print(f"   round {round_ + 1}: raw executemany {raw:10,.0f}  run.log {client:10,.0f} points/s "
                  f"({client / raw:.2f} x raw)")
        print(f"2. tight loop ({looped}, torch on 1 thread), {args.steps:,} steps a side, {args.rounds} rounds")
        slowdowns: dict[str, list[float]] = collections.defaultdict(list)
        extra_us: dict[str, list[float]] = collections.defaultdict(list)
        for round_ in range(args.rounds):
            round_slowdown, microseconds = overhead_round(f"sqlite:///{folder}/loop{round_}.db", args.steps,
                                                        make_step, seed=round_)
            for name, value in round_slowdown.items():
                slowdowns[name].append(value)
            for name, value in microseconds.items():
                extra_us[name].append(value)
            print(f"   round {round_ + 1}: step {microseconds['off']:.0f} us; slowdown over logging off: " + ", ".join(
                f"{name} {slowdowns[name][-1] * 100:+.2f} % ({microseconds[name]:+.1f} us)" for name in round_slowdown)
                + f"; run.log's flushes {microseconds['flushes']:.1f} us a step")
    rates, to_raw = [r[0] for r in throughput], [r[1] for r in throughput]
    rate = statistics.median(rates)
    print(f"median run.log = {rate:,.0f} points/s (spread {min(rates):,.0f}..{max(rates):,.0f}), "
          f"{statistics.median(to_raw):.2f} x raw executemany; required >= 100,000 points/s")
    for name, values in slowdowns.items():
        print(f"median tight-loop slowdown, {name:12s} = {statistics.median(values) * 100:+.2f} % (spread "
              f"{min(values) * 100:+.2f}..{max(values) * 100:+.2f} %)" + ("; required <= 2 %" if name == "run.log"
                                                                          else ""))
    step_us, log_us = statistics.median(extra_us["off"]), statistics.median(extra_us["run.log"])
    print(f"median step with logging off = {step_us:.0f} us; run.log adds {log_us:+.1f} us a step (its flushes at "
          f"segment ends {statistics.median(extra_us['flushes']):.1f} us of it)")
    slowdown = statistics.median(slowdowns["run.log"])
    ok = rate >= 100_000 and slowdown <= 0.02
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
