"""Training throughput of the engine over a bare loop with the same timm model, batch and optimiser.

The two loops run step by step in turn, in the same process: each time the engine's training step hands its
metrics to the sink, the sink runs one step of the bare loop and times it. The bare loop is what a researcher
would write for the same preset: its own model and optimiser, and each step an episode drawn in the loop from the
same dataset and split. (It used to train on one fixed batch of random images, which charged the engine for
drawing data that any real loop draws too.) The engine's step is the time from one metrics hand-off to the next,
less the bare step run in between, so it covers everything the engine does per step (the divergence guard's
checks, gradient norm, metrics, histograms, system sampling, and its own way of drawing episodes).
Pairing every step this way makes a shared, noisy machine slow both loops alike: measured a run at a time, whole
rounds of either loop differed by 30 % here. The engine's background
threads (the next episode's prefetch, the system sampler) may run during a bare step; both cost under 0.1 % of a
step (`bench/profile_step.py`), so the pairing hides at most that.

Two traceability settings, each its own run per round: `default` (system metrics every 5 s, per-layer norms and
histograms every 100 steps) and `heavy` (every 1 s and every 20 steps). Provenance is collected once per attempt,
before the first step: its time is printed and added to the engine's, spread over a default run's 300 steps.
Setup, evaluation and checkpoints at the end are outside both measurements. Both loops run in the one process, so
both under the allocator policy `train()` sets for its process (`engine/host_memory.py`: freed memory is kept for
the next step); each round prints the page faults a step of each loop took.

    .venv/bin/python bench/train_overhead.py [--steps 100] [--rounds 5]
Required (median of the rounds' ratios): default ratio >= 0.98, heavy ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import with_overrides  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from engine.sinks import NullSink  # noqa: E402
from engine.models import ExperimentModel  # noqa: E402
from engine.provenance import collect_provenance  # noqa: E402
from engine.episode_source import load_episodes  # noqa: E402
from engine.train import build_optimizer, train  # noqa: E402

SIZE = ["data.image_size=32", "data.n_way=5", "data.k_shot=8", "data.q_queries=8", "data.samples_per_class=40",
        "model.encoder.depth=4", "model.encoder.embed_dim=64", "model.encoder.num_heads=4",
        "schedule.eval_every=1000000", "schedule.image_every=1000000", "schedule.checkpoint_every=1000000",
        "schedule.histogram_every=100", "runtime.system_metrics_seconds=5",
        "schedule.final_eval_episodes=0"]  # the report at the end is outside the measurement: skip it
HEAVY = ["schedule.histogram_every=20", "runtime.system_metrics_seconds=1"]  # traceability more often
BARS = {"default": 0.98, "heavy": 0.97}
DEFAULT_RUN_STEPS = 300


def bare_step(cfg) -> Callable[[], torch.Tensor]:
    """One step of the bare loop: the same model, optimiser and batch size as the engine's, and the same data: each
    step draws its episode in the loop from the same dataset and split (its own sampler), as a plain loop would.
    It reads its loss to the host, as the engine does, and returns it (`bench/client_logging.py --preset` logs it)."""
    torch.manual_seed(cfg.runtime.seed)
    model = ExperimentModel(cfg)
    optimizer = build_optimizer(cfg.optim, model)
    source = load_episodes(cfg, torch.device("cpu"))

    def step() -> torch.Tensor:
        images, labels, is_query = source.batch(source.train)
        optimizer.zero_grad(set_to_none=True)
        out = model(images, labels, is_query)
        out.total.backward()
        optimizer.step()
        out.total.item()
        return out.total
    return step


def bare_images_per_second(cfg, steps: int) -> float:
    """The bare loop alone, steps 2..N+1 (the first warms up)."""
    step = bare_step(cfg)
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    batch = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    return batch * steps / (time.perf_counter() - started)


class TimingSink(NullSink):
    """Notes when each training step's metrics arrive, and whether the heavy settings really watched."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sampled = self.histogram_steps = 0

    def log_metrics(self, step, values):
        if "loss/total" in values:
            self.times.append(time.perf_counter())
            self.arrived()
        self.sampled += any(k.startswith("sys/") for k in values)
        self.histogram_steps += any(k.startswith("weights/") for k in values)

    def arrived(self) -> None:
        pass


class PairedSink(TimingSink):
    """Runs and times one bare step after each engine step's metrics arrive, and counts each side's page faults
    (memory handed back to the system and faulted in again is time a loop loses)."""

    def __init__(self, step: Callable[[], object]) -> None:
        super().__init__()
        self.step = step
        self.engine_seconds: list[float] = []
        self.bare_seconds: list[float] = []
        self.engine_faults: list[int] = []
        self.bare_faults: list[int] = []
        self._left: float | None = None
        self._faults_left = 0

    def arrived(self) -> None:
        faults = page_faults()
        if self._left is not None:
            self.engine_seconds.append(self.times[-1] - self._left)
            self.engine_faults.append(faults - self._faults_left)
        started = time.perf_counter()
        self.step()
        ended = time.perf_counter()
        self.bare_seconds.append(ended - started)
        self._faults_left = page_faults()
        self.bare_faults.append(self._faults_left - faults)
        self._left = time.perf_counter()


def page_faults() -> int:
    """Minor page faults of this thread so far (the process's where a thread's own are not counted)."""
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt


def paired_seconds(cfg, steps: int) -> tuple[float, float, float, float]:
    """(engine, bare) seconds over steps 2..N+1 of each, run in turn (both first steps warm up), and (engine, bare)
    page faults per step over the same steps."""
    sink = PairedSink(bare_step(cfg))
    train(with_overrides(cfg, [f"schedule.episodes={steps + 1}"]), sink)
    if cfg.schedule.histogram_every == 20:  # the heavy settings must really have watched
        assert sink.histogram_steps >= steps // 20, "histograms were not logged during the measurement"
        assert sink.sampled >= 1, "no system metrics were sampled during the measurement"
    return (sum(sink.engine_seconds), sum(sink.bare_seconds[1:]),
            statistics.mean(sink.engine_faults), statistics.mean(sink.bare_faults[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--preset", default="2022-12-08-disc-vit1")
    args = parser.parse_args()
    cfg = with_overrides(PRESETS[args.preset], SIZE)
    batch = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    print(f"preset {args.preset} at bench size: ViT depth {cfg.model.encoder.depth}, width "
          f"{cfg.model.encoder.embed_dim}, {cfg.data.image_size}px, batch {batch}, torch threads "
          f"{torch.get_num_threads()}; {args.steps} timed steps of each loop per run, in turn")
    started = time.perf_counter()
    collect_provenance()
    provenance_s = time.perf_counter() - started
    print(f"provenance (git, packages, hardware) once per attempt: {provenance_s * 1000:.0f} ms, spread over "
          f"{DEFAULT_RUN_STEPS} steps: {provenance_s / DEFAULT_RUN_STEPS * 1000:.2f} ms per step, added to the "
          f"engine's")
    settings = {"default": cfg, "heavy": with_overrides(cfg, HEAVY)}
    ratios: dict[str, list[float]] = {name: [] for name in settings}
    for round_ in range(args.rounds):
        line = []
        for name, each in settings.items():
            engine_s, bare_s, engine_faults, bare_faults = paired_seconds(each, args.steps)
            engine_s += provenance_s / DEFAULT_RUN_STEPS * args.steps
            ratios[name].append(bare_s / engine_s)
            line.append(f"{name}: engine {batch * args.steps / engine_s:7.1f} img/s, bare "
                        f"{batch * args.steps / bare_s:7.1f}, ratio {ratios[name][-1]:.3f} (page faults a step "
                        f"{engine_faults:.0f} / {bare_faults:.0f})")
        print(f"round {round_ + 1}:  " + "   ".join(line))
    passed = True
    for name, values in ratios.items():
        ratio = statistics.median(values)
        ok = ratio >= BARS[name]
        passed &= ok
        print(f"{name} traceability: median ratio {ratio:.3f} of {args.rounds} rounds (spread {min(values):.3f}.."
              f"{max(values):.3f}; required >= {BARS[name]}): {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
