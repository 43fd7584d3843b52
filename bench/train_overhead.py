"""Training throughput of the engine over a bare loop with the same timm model, batch and optimiser.

Both are measured in this run, interleaved, so a noisy shared machine slows both alike. The engine's time
covers everything it does per step (episode sampling, the divergence guard's checks, gradient-norm, metrics to
the sink) at two traceability settings, each in the same rounds: `default` (system metrics every 5 s, per-layer
norms and histograms every 100 steps) and `heavy` (every 1 s and every 20 steps). Provenance is collected once per
attempt, before the first step: its time is printed and added to the engine's, spread over a default run's
300 steps. Setup, evaluation and checkpoints at the end are outside both measurements.

    .venv/bin/python bench/train_overhead.py [--steps 60] [--rounds 5]
Required (median of the rounds): default ratio >= 0.98, heavy ratio >= 0.97.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import with_overrides  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from engine.sinks import NullSink  # noqa: E402
from engine.models import ExperimentModel  # noqa: E402
from engine.provenance import collect_provenance  # noqa: E402
from engine.train import build_optimizer, train  # noqa: E402

SIZE = ["data.image_size=32", "data.n_way=5", "data.k_shot=8", "data.q_queries=8", "data.samples_per_class=40",
        "model.encoder.depth=4", "model.encoder.embed_dim=64", "model.encoder.num_heads=4",
        "schedule.eval_every=1000000", "schedule.image_every=1000000", "schedule.checkpoint_every=1000000",
        "schedule.histogram_every=100", "runtime.system_metrics_seconds=5"]
HEAVY = ["schedule.histogram_every=20", "runtime.system_metrics_seconds=1"]  # traceability more often
BARS = {"default": 0.98, "heavy": 0.97}
DEFAULT_RUN_STEPS = 300


class TimingSink(NullSink):
    """Notes when each training step's metrics arrive."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def log_metrics(self, step, values):
        if "loss/total" in values:
            self.times.append(time.perf_counter())
        self.sampled = getattr(self, "sampled", 0) + any(k.startswith("sys/") for k in values)
        self.histogram_steps = getattr(self, "histogram_steps", 0) + any(k.startswith("weights/") for k in values)


def engine_images_per_second(cfg, steps: int) -> float:
    sink = TimingSink()
    train(with_overrides(cfg, [f"schedule.episodes={steps + 1}"]), sink)
    if cfg.schedule.histogram_every == 20:  # the heavy settings must really have watched
        assert sink.histogram_steps >= steps // 20, "histograms were not logged during the measurement"
        assert sink.sampled >= 1, "no system metrics were sampled during the measurement"
    batch = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    return batch * steps / (sink.times[-1] - sink.times[0])  # steps 2..N+1: the first step warms up


def bare_images_per_second(cfg, steps: int) -> float:
    torch.manual_seed(cfg.runtime.seed)
    model = ExperimentModel(cfg)
    optimizer = build_optimizer(cfg.optim, model)
    d = cfg.data
    per_class = d.k_shot + d.q_queries
    images = torch.rand(d.n_way * per_class, d.channels, d.image_size, d.image_size)
    labels = torch.arange(d.n_way).repeat_interleave(per_class)
    is_query = torch.tensor(([False] * d.k_shot + [True] * d.q_queries) * d.n_way)
    times = []
    for _ in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        out = model(images, labels, is_query)
        out.total.backward()
        optimizer.step()
        out.total.item()
        times.append(time.perf_counter())
    return len(images) * steps / (times[-1] - times[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--preset", default="2022-12-08-disc-vit1")
    args = parser.parse_args()
    cfg = with_overrides(PRESETS[args.preset], SIZE)
    print(f"preset {args.preset} at bench size: ViT depth {cfg.model.encoder.depth}, width "
          f"{cfg.model.encoder.embed_dim}, {cfg.data.image_size}px, batch "
          f"{cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)}, torch threads {torch.get_num_threads()}")
    settings = {"default": cfg, "heavy": with_overrides(cfg, HEAVY)}
    bare: list[float] = []
    engine: dict[str, list[float]] = {name: [] for name in settings}
    for round_ in range(args.rounds):
        bare.append(bare_images_per_second(cfg, args.steps))
        for name, each in settings.items():
            engine[name].append(engine_images_per_second(each, args.steps))
        print(f"round {round_ + 1}: bare {bare[-1]:8.1f} img/s   "
              + "   ".join(f"engine {n} {v[-1]:8.1f} img/s" for n, v in engine.items()))
    started = time.perf_counter()
    collect_provenance()
    provenance_s = time.perf_counter() - started
    print(f"provenance (git, packages, hardware) once per attempt: {provenance_s * 1000:.0f} ms, spread over "
          f"{DEFAULT_RUN_STEPS} steps")
    batch = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    passed = True
    for name, values in engine.items():
        per_step = batch / statistics.median(values) + provenance_s / DEFAULT_RUN_STEPS
        ratio = batch / per_step / statistics.median(bare)
        ok = ratio >= BARS[name]
        passed &= ok
        print(f"{name} traceability: median engine {statistics.median(values):.1f} img/s vs bare "
              f"{statistics.median(bare):.1f}: ratio {ratio:.3f} (required >= {BARS[name]}): {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
