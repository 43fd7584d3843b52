import math

import pytest

from engine.presets import PRESETS
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

    def stop_requested(self):
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


# --- the 2023.01.12 presets against the journal (issue 23) -------------------------------------------------------

from engine.lint import lint  # noqa: E402
from engine.presets import PRESET_INFO  # noqa: E402

JOURNAL_2023 = {name: info for name, info in PRESET_INFO.items() if info.journal_date == "2023.01.12"}


def test_the_2023_presets_take_what_the_journal_says():
    """Masking in the encoder, timm's learnable position embedding (encoder and decoders), two decoders fed the
    same input, shared and separate; reconstruction only."""
    assert {name.removesuffix("-journal-scale") for name in JOURNAL_2023} == {
        "2023-01-12-vit-ae-shared-decoders", "2023-01-12-vit-ae-separate-decoders",
        "2023-01-12-mae-two-decoders-different-targets"}
    for name, info in JOURNAL_2023.items():
        model = info.config.model
        assert model.masking.ratio > 0 and model.decoders.count == 2, name
        assert model.encoder.pos_embed == model.decoders.pos_embed == "learnable", name
        assert not model.contrastive.enabled and not model.discriminator.enabled, name
    assert JOURNAL_2023["2023-01-12-vit-ae-shared-decoders"].config.model.decoders.share
    assert not JOURNAL_2023["2023-01-12-vit-ae-separate-decoders"].config.model.decoders.share


def test_only_a_preset_named_for_it_gives_its_decoders_different_targets():
    for name, info in PRESET_INFO.items():
        decoders = info.config.model.decoders
        if decoders.count == 2 and decoders.first.target != decoders.second.target:
            assert "different-targets" in name and "Not the journal's" in info.summary, name
    for name, info in JOURNAL_2023.items():
        if "different-targets" not in name:
            assert "the journal does not say" in info.summary, name  # the target is an assumption, said so


def test_the_shared_pair_says_it_is_degenerate_and_its_lint_is_not_hidden():
    for name in ("2023-01-12-vit-ae-shared-decoders", "2023-01-12-vit-ae-shared-decoders-journal-scale"):
        info = PRESET_INFO[name]
        assert "degenerate" in info.summary and "lint warns" in info.summary
        assert [w.path for w in lint(info.config)] == ["model.decoders.share"]
    for name, info in JOURNAL_2023.items():  # the other two lint clean
        if "shared" not in name:
            assert lint(info.config) == [], name


def test_presets_live_in_their_own_module_and_config_no_longer_names_them():
    """engine.presets imports engine.config: config naming the presets back would be an import circle."""
    from engine import config, presets

    assert presets.preset("tiny") is presets.PRESETS["tiny"]
    for name in ("Preset", "PRESETS", "PRESET_INFO", "preset", "what_trains", "lint"):
        assert not hasattr(config, name), name
