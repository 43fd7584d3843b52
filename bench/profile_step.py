"""Where the engine's extra time per training step goes, against the bare loop of `bench/train_overhead.py`.

Runs the bench's own two loops (same preset, size and traceability settings) with light timers wrapped around
what the engine does besides the model: episode sampling, the divergence guard, metrics, the gradient norm,
histograms, system sampling and the sink (and the model's forward, backward and optimiser step, and the episode
sampling, timed the same way in both loops; the evaluation after the last step is no step's). Timers nest: a category's time excludes time spent in another category it calls. Prints each
category in ms per step and as a fraction of the bare step, median of the rounds, and what is left unattributed.

    .venv/bin/python bench/profile_step.py [--steps 60] [--rounds 3] [--settings default|heavy] [--cprofile]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine.train as loop  # noqa: E402
from data.prefetch import PrefetchingSampler  # noqa: E402
from engine.config import with_overrides  # noqa: E402
from engine.guard import DivergenceGuard  # noqa: E402
from engine.models import ExperimentModel  # noqa: E402
from engine.monitoring import MonitoredSink, SystemSampler  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from train_overhead import HEAVY, SIZE, TimingSink, bare_images_per_second  # noqa: E402

MODEL = ("forward", "backward", "optimizer step")
BOTH = (*MODEL, "episode sampling")  # what the bare loop does too, timed the same way in both
ENGINE = ("episode sampling", "guard", "metrics", "gradient norm", "histograms", "system sampling", "sink",
          "team (stop / incident agreement)")


class Timers:
    """Exclusive time per category on the training thread: an inner category's time is taken out of the outer."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.off_thread: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [category, started, time spent in inner categories]
        self.main = threading.main_thread()

    def wrap(self, category: str, function: Callable) -> Callable:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not self.main:  # the system sampler's own thread
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    self.off_thread[category] += time.perf_counter() - started
            frame = [category, time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return function(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[1]
                self.seconds[category] += spent - frame[2]
                if self._stack:
                    self._stack[-1][2] += spent
        return timed


def instrument(timers: Timers) -> list[tuple[Any, str, Any]]:
    """Wrap what each category calls; returns what to put back."""
    targets = [
        (loop.EpisodeSource, "batch", "episode sampling"), (loop.EpisodeSource, "on_device", "episode sampling"),
        (loop.EpisodeSource, "staged", "episode sampling"), (PrefetchingSampler, "next", "episode sampling"),
        (DivergenceGuard, "remember_update", "guard"), (DivergenceGuard, "total_norms", "gradient norm"),
        (DivergenceGuard, "check_loss", "guard"), (DivergenceGuard, "check_gradient", "guard"),
        (DivergenceGuard, "check_parameter_norm", "guard"), (DivergenceGuard, "record_finite", "guard"),
        (loop, "step_scalars", "metrics"), (loop, "to_floats", "metrics"), (loop, "learning_rate", "metrics"),
        (loop, "throughput_metrics", "metrics"),
        (torch.nn.utils, "clip_grad_norm_", "gradient norm"), (torch.nn.utils, "get_total_norm", "gradient norm"),
        (loop, "weights_and_gradients", "histograms"),
        (SystemSampler, "take", "system sampling"), (SystemSampler, "sample", "system sampling"),
        (MonitoredSink, "log_metrics", "sink"), (MonitoredSink, "log_event", "sink"),
        (MonitoredSink, "stop_requested", "sink"), (TimingSink, "log_metrics", "sink"),
        (ExperimentModel, "forward", "forward"), (torch.Tensor, "backward", "backward"),
        (torch.optim.AdamW, "step", "optimizer step"), (torch.optim.Adam, "step", "optimizer step"),
        (torch.optim.SGD, "step", "optimizer step"),
    ]
    for name in ("agree_to_stop", "slice_of", "agree_on_incident"):
        targets.append((loop.Team, name, "team (stop / incident agreement)"))
    saved = []
    for owner, name, category in targets:
        real = owner.__dict__.get(name)  # None: inherited, so put back by deleting the wrapper
        saved.append((owner, name, real))
        wrapped = timers.wrap(category, getattr(owner, name))
        setattr(owner, name, staticmethod(wrapped) if isinstance(real, staticmethod) else wrapped)
    return saved


def restore(saved: list[tuple[Any, str, Any]]) -> None:
    for owner, name, real in reversed(saved):
        if real is None:
            delattr(owner, name)
        else:
            setattr(owner, name, real)


def profiled_engine(cfg, steps: int) -> tuple[float, dict[str, float], dict[str, float]]:
    """(seconds per step, exclusive seconds per step by category, off-thread seconds per step) over the timed
    steps 2..N+1, as the bench times them."""
    timers = Timers()
    sink = TimingSink()
    saved = instrument(timers)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    real_log = TimingSink.log_metrics

    def mark(self, step, values):  # the clock runs from step 1's metrics to the last step's, as the bench's does
        real_log(self, step, values)  # (not on to the evaluation after the last step, whose forwards are no step's)
        if step in (1, steps + 1) and "loss/total" in values:
            (first if step == 1 else last).update(timers.seconds)
    TimingSink.log_metrics = mark
    try:
        loop.train(with_overrides(cfg, [f"schedule.episodes={steps + 1}"]), sink)
    finally:
        TimingSink.log_metrics = real_log
        restore(saved)
    per_step = (sink.times[-1] - sink.times[0]) / steps
    timed = {k: (v - first.get(k, 0.0)) / steps for k, v in last.items()}
    return per_step, timed, {k: v / steps for k, v in timers.off_thread.items()}


def profiled_bare(cfg, steps: int) -> tuple[float, dict[str, float]]:
    timers = Timers()
    saved = instrument(timers)
    try:
        images_per_s = bare_images_per_second(cfg, steps)
    finally:
        restore(saved)
    batch = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    return batch / images_per_s, {k: v / (steps + 1) for k, v in timers.seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", choices=("default", "heavy"), default="default")
    parser.add_argument("--preset", default="2022-12-08-disc-vit1")
    parser.add_argument("--cprofile", action="store_true", help="also print cProfile's top functions of one "
                        "engine run (its own overhead inflates Python-heavy code)")
    args = parser.parse_args()
    cfg = with_overrides(PRESETS[args.preset], SIZE + (HEAVY if args.settings == "heavy" else []))
    bare_steps, engine_steps = [], []
    bare_parts: dict[str, list[float]] = defaultdict(list)
    engine_parts: dict[str, list[float]] = defaultdict(list)
    off_parts: dict[str, list[float]] = defaultdict(list)
    for round_ in range(args.rounds):
        seconds, parts = profiled_bare(cfg, args.steps)
        bare_steps.append(seconds)
        for k in BOTH:
            bare_parts[k].append(parts.get(k, 0.0))
        seconds, parts, off = profiled_engine(cfg, args.steps)
        engine_steps.append(seconds)
        for k in MODEL + ENGINE:
            engine_parts[k].append(parts.get(k, 0.0))
        for k, v in off.items():
            off_parts[k].append(v)
        print(f"round {round_ + 1}: bare {bare_steps[-1] * 1e3:.2f} ms/step, engine {engine_steps[-1] * 1e3:.2f} "
              f"ms/step ({args.settings} traceability)")
    bare = statistics.median(bare_steps)
    engine = statistics.median(engine_steps)
    spread = (max(engine_steps) - min(engine_steps)) * 1e3
    print(f"\nmedian of {args.rounds} rounds, {args.steps} steps each: bare {bare * 1e3:.2f} ms/step, engine "
          f"{engine * 1e3:.2f} ms/step (spread {spread:.2f} ms): engine extra {(engine - bare) * 1e3:+.2f} ms "
          f"= {(engine - bare) / bare:+.1%} of the bare step (ratio {bare / engine:.3f})\n")
    print(f"{'':34}{'engine ms':>10}{'bare ms':>10}{'extra ms':>10}{'of bare step':>14}")
    explained = 0.0
    for k in MODEL + ENGINE:
        e = statistics.median(engine_parts[k])
        b = statistics.median(bare_parts[k]) if k in BOTH else 0.0
        explained += e - b
        print(f"{k:34}{e * 1e3:10.3f}{b * 1e3:10.3f}{(e - b) * 1e3:10.3f}{(e - b) / bare:14.2%}")
    rest = (engine - bare) - explained
    print(f"{'rest of the loop (unattributed)':34}{'':10}{'':10}{rest * 1e3:10.3f}{rest / bare:14.2%}")
    for k, v in off_parts.items():
        print(f"{k + ' (on its own thread)':34}{statistics.median(v) * 1e3:10.3f}{'':10}{'':10}"
              f"{statistics.median(v) / bare:14.2%}")
    if args.cprofile:
        profiler = cProfile.Profile()
        sink = TimingSink()
        profiler.runcall(loop.train, with_overrides(cfg, [f"schedule.episodes={args.steps + 1}"]), sink)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
