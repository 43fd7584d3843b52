import math

import pytest

from engine.config import PRESETS
from engine.train import train
from tests.helpers import tiny


class Recorder:
    def __init__(self, stop_after: int | None = None) -> None:
        self.metrics: dict[int, dict[str, float]] = {}
        self.images: list[tuple[str, int, bytes]] = []
        self.events: list[tuple[str, dict]] = []
        self.stop_after = stop_after

    def log_metrics(self, step, values):
        self.metrics.setdefault(step, {}).update(values)

    def log_image(self, key, step, png):
        self.images.append((key, step, png))

    def log_event(self, kind, payload):
        self.events.append((kind, payload))

    def should_stop(self):
        return self.stop_after is not None and max(self.metrics, default=0) >= self.stop_after

    def losses(self) -> list[float]:
        return [self.metrics[s]["loss/total"] for s in sorted(self.metrics)]


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name.endswith("-journal-scale") else name
                                  for name in sorted(PRESETS)])  # the fast lane trains each at its small size
def test_every_preset_trains_three_episodes_with_finite_losses(name):
    cfg = tiny(PRESETS[name], "schedule.episodes=3", "schedule.eval_every=3", "schedule.image_every=3",
               "model.encoder.depth=2" if PRESETS[name].model.encoder.depth > 1 else "model.encoder.depth=1")
    sink = Recorder()
    result = train(cfg, sink)
    assert result.status == "completed" and result.step == 3
    for step in (1, 2, 3):
        losses = {k: v for k, v in sink.metrics[step].items() if "loss/" in k}
        assert losses and all(math.isfinite(v) for v in losses.values()), losses
    if cfg.model.decoders.count:
        assert [(k, s) for k, s, _ in sink.images] == [("reconstruction", 3)]
        assert sink.images[0][2].startswith(b"\x89PNG")
