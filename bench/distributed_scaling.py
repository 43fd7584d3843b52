"""Images per second of one run on 1 and on 2 processes (torch.distributed, gloo on this CPU), on the same
episodes (same seed), and their ratio.

Each variant trains through `engine.train.train` exactly as a run would (2 processes: this process is rank 0 and
starts rank 1 itself, each gets its half of every episode, features all-gathered, DDP's all-reduce), with
evaluation, figures and checkpoints pushed past the end; the first WARMUP steps are left out. Variants alternate
for --rounds rounds so a noisy machine slows them alike; the median round counts.

What 2 cores allow: two processes get one thread each (OMP_NUM_THREADS=1), so the fair baseline is one process
with both threads; one process with one thread is printed too (a core's worth). At best 2 processes reach about
1x the 2-thread process (the same two cores, now without intra-op threading overheads but with a gather, an
all-reduce and three small agreement collectives per step over loopback); more processes on more cores, or one
per GPU with NCCL, is where the split pays. On a GPU machine run it with --device cuda (one process per GPU).

    .venv/bin/python bench/distributed_scaling.py [--steps 30] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# Set before torch loads (the tests do the same): OpenMP threads that spin while they wait collapse when anything
# else shares the two cores, which would measure the spinning rather than the split.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import with_overrides  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from engine.sinks import NullSink  # noqa: E402
from engine.train import train  # noqa: E402

# 80 images an episode (5-way, 8 support + 8 queries), 32 px, a 4-block width-64 encoder, disc and one decoder
SIZE = ["data.image_size=32", "data.n_way=5", "data.k_shot=8", "data.q_queries=8", "data.samples_per_class=40",
        "model.encoder.depth=4", "model.encoder.embed_dim=64", "model.encoder.num_heads=4",
        "schedule.eval_every=1000000", "schedule.image_every=1000000", "schedule.checkpoint_every=1000000",
        "schedule.histogram_every=0", "schedule.final_eval_episodes=0", "runtime.system_metrics_seconds=0"]
WARMUP = 5


class StepTimes(NullSink):
    """When each training step's metrics reach rank 0's sink, and the first losses (to show the runs agree)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.losses: list[float] = []

    def log_metrics(self, step, values):
        if "loss/total" in values:
            self.times.append(time.perf_counter())
            self.losses.append(values["loss/total"])


def images_per_second(processes: int, threads: int, steps: int, device: str) -> tuple[float, list[float]]:
    cfg = with_overrides(PRESETS["tiny"], [*SIZE, f"schedule.episodes={steps + WARMUP}",
                                           f"runtime.processes={processes}", f"runtime.device=\"{device}\""])
    images = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # with 2 processes the engine sets each rank's own share
    try:
        sink = StepTimes()
        train(cfg, sink)
    finally:
        torch.set_num_threads(before)
    measured = sink.times[WARMUP - 1:]
    return images * (len(measured) - 1) / (measured[-1] - measured[0]), sink.losses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    cores = torch.multiprocessing.cpu_count()
    variants = {"1 process, 1 thread": (1, 1), f"1 process, {cores} threads": (1, cores),
                f"2 processes, {max(1, cores // 2)} thread(s) each": (2, 1)}
    if args.device == "cuda":
        gpus = torch.cuda.device_count()
        variants = {"1 process, 1 GPU": (1, 1), **({f"{gpus} processes, 1 GPU each": (gpus, 1)} if gpus > 1 else {})}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    first_losses: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (processes, threads) in variants.items():
            rate, losses = images_per_second(processes, threads, args.steps, args.device)
            rates[name].append(rate)
            first_losses.setdefault(name, losses[:5])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{cores} CPU cores (load average {load} at the end: other work on the cores slows 2 processes most), "
          f"device {args.device}, {args.steps} steps after {WARMUP} warm-up, median of {args.rounds} rounds")
    medians = {name: statistics.median(r) for name, r in rates.items()}
    for name, rate in medians.items():
        print(f"  {name:<32} {rate:8.1f} images/s   (rounds: {', '.join(f'{r:.1f}' for r in rates[name])})")
    names = list(medians)
    baseline, split = names[-2] if len(names) > 2 else names[0], names[-1]
    if split != baseline:
        print(f"ratio {split} / {baseline}: {medians[split] / medians[baseline]:.2f}")
        if len(names) > 2:
            print(f"ratio {split} / {names[0]}: {medians[split] / medians[names[0]]:.2f}")
    spread = max(abs(a - b) for a, b in zip(first_losses[names[0]], first_losses[split]))
    print(f"same episodes: the first 5 losses differ by at most {spread:.2g} between {names[0]!r} and {split!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
