"""Presets: one per journal experiment, each small enough to run on a CPU in minutes, each with the journal entry
it mirrors and, in its one-line summary, what it assumes where the journal is silent or departs from it.

(Moved out of `engine.config`, which still re-exports `Preset`, `PRESETS`, `PRESET_INFO`, `preset` and
`what_trains`, so callers keep working.) Torch-free, like the config: the app imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config import ConfigError, Problem, RunConfig, validate_config


@dataclass(frozen=True)
class Preset:
    """A named config with the journal entry it mirrors (`journal_date` as the journal writes it, or "")."""

    name: str
    journal_date: str
    summary: str
    config: RunConfig

    @property
    def trains(self) -> str:
        return what_trains(self.config)


def what_trains(cfg: RunConfig) -> str:
    """Exactly which losses train the encoder, in words (a preset's summary is only as honest as this)."""
    model, loss = cfg.model, cfg.loss
    parts = []
    if model.contrastive.enabled:
        form = "" if loss.log_sum_exp else ", exp-then-divide as the 2022 code"
        parts.append(f"InfoNCE ({loss.denominator} denominator, τ = {loss.temperature:g}, "
                     f"{'L2-normalised' if loss.normalize else 'unnormalised'} {model.contrastive.feature_dim}-D "
                     f"features{form})")
    if model.discriminator.enabled:
        parts.append("discriminator as a probe on detached features" if model.discriminator.detach else
                     "discriminator trained jointly with the encoder")
    dec = model.decoders
    if dec.count:
        targets = " and ".join(t.target for t in (dec.first, dec.second)[: dec.count])
        sharing = (", shared" if dec.share else ", separate") if dec.count == 2 else ""
        parts.append(f"{dec.count} decoder{'s' if dec.count > 1 else ''} ({targets}{sharing})")
    if model.masking.ratio:
        parts.append(f"{model.masking.ratio:.0%} of patches masked")
    return " + ".join(parts)


def _preset(name: str, journal_date: str, summary: str, **sections: dict[str, Any]) -> Preset:
    return Preset(name, journal_date, summary, validate_config(sections))


def _journal_scale(small: Preset) -> Preset:
    """The same experiment at the journal's size: 128 images per episode (4 classes x (16 support + 16 queries)),
    32 px, a ViT-Tiny-wide encoder, thousands of episodes. Meant for a GPU; hours on a CPU."""
    values = small.config.model_dump()
    values["data"].update(image_size=32, n_way=4, k_shot=16, q_queries=16, samples_per_class=500)
    values["model"]["encoder"].update(embed_dim=192, num_heads=3)
    values["model"]["decoders"].update(embed_dim=128, depth=2, num_heads=4)
    values["schedule"].update(episodes=max(values["schedule"]["episodes"], 5000), eval_every=250,
                              image_every=500, checkpoint_every=500)
    return Preset(f"{small.name}-journal-scale", small.journal_date,
                  f"{small.summary} — at the journal's size (128 images per episode, 32 px; for a GPU)",
                  validate_config(values))


_VIT1 = {"encoder": {"depth": 1, "embed_dim": 32, "num_heads": 2, "patch_size": 4}}
_VIT6 = {"encoder": {"depth": 6, "embed_dim": 32, "num_heads": 2, "patch_size": 4}}
_EPISODES = {"episodes": 300, "eval_every": 50, "image_every": 100, "checkpoint_every": 100}
_AE_SCHEDULE = {"episodes": 300, "eval_every": 50, "image_every": 50, "checkpoint_every": 100}
_DATA = {"dataset": "shapes", "image_size": 16, "n_way": 5, "k_shot": 4, "q_queries": 4}

# The journal's 2023.01.12 entry: the autoencoder rebuilt as a ViT, its two decoders sharing weights, then not
# sharing them; "following standard MAE, masking in the encoder; the position embedding timm's default learnable
# nn.Parameter; the two decoders' input is the same". Reconstruction only (no InfoNCE). It does not say what the
# decoders reconstruct: both take MAE's own target, the masked patches' pixels. (Normalised pixels would be noise
# here: on shapes about half the patches are flat background, pixel std about 0.01, scaled up to variance 1.)
_MAE_AUTOENCODER = {**_VIT1, "contrastive": {"enabled": False}, "masking": {"ratio": 0.75}}
_SAME_TARGET_DECODERS = {"count": 2, "pos_embed": "learnable", "first": {"target": "masked"},
                         "second": {"target": "masked"}}
_TARGET_ASSUMED = "both reconstruct the masked patches' pixels (MAE's target; the journal does not say which)"

_JOURNAL_PRESETS = [
    _preset("2022-12-08-disc-vit1", "2022.12.08",
            "disc + ViT-1: InfoNCE over same- and different-class pairs, accuracy from the discriminator",
            data=_DATA, schedule=_EPISODES, loss={"normalize": False, "temperature": 1.0},
            model={**_VIT1, "discriminator": {"enabled": True}}),
    _preset("2022-12-08-vit1", "2022.12.08", "ViT-1 alone: the same InfoNCE, no discriminator (prototype accuracy)",
            data=_DATA, schedule=_EPISODES, loss={"normalize": False, "temperature": 1.0}, model=_VIT1),
    _preset("2022-12-14-negatives-infonce-diverges", "2022.12.14",
            "InfoNCE whose denominator leaves out same-class terms, unnormalised, exp-then-divide: goes negative, "
            "then NaN (lr and τ tuned so it happens within ~1,000 steps here, the step depending on the thread "
            "count; the journal's was episode 3999)",
            data=_DATA, schedule={**_EPISODES, "episodes": 4000}, model={**_VIT1, "discriminator": {"enabled": True}},
            loss={"denominator": "negatives", "normalize": False, "temperature": 0.5, "log_sum_exp": False},
            optim={"lr": 0.01}),
    _preset("2022-12-14-normalized-infonce-2d", "2022.12.14",
            "The fix: denominator over all pairs, (B,2) features L2-normalised before the loss, with disc",
            data=_DATA, schedule=_EPISODES, loss={"normalize": True, "temperature": 0.1},
            model={**_VIT1, "discriminator": {"enabled": True}}),
    _preset("2022-12-14-vit6-1d-no-accuracy", "2022.12.14",
            "ViT-6 with (B,1) features and no discriminator (only the prototype accuracy)",
            data=_DATA, schedule=_EPISODES, loss={"normalize": True, "temperature": 0.1},
            model={**_VIT6, "contrastive": {"feature_dim": 1}}),
    _preset("2022-12-14-vit6-1d-disc", "2022.12.14", "ViT-6 with (B,1) features plus the discriminator for accuracy",
            data=_DATA, schedule=_EPISODES, loss={"normalize": True, "temperature": 0.1},
            model={**_VIT6, "contrastive": {"feature_dim": 1}, "discriminator": {"enabled": True}}),
    _preset("2023-01-12-vit-ae-shared-decoders", "2023.01.12",
            "ViT autoencoder, MAE masking (75%) in the encoder, two decoders sharing weights on the same input, "
            f"learnable position embeddings; assumes {_TARGET_ASSUMED}, so the shared pair is degenerate: the "
            "second decoder only rescales the loss (lint warns; kept because the journal ran it)",
            data=_DATA, schedule=_AE_SCHEDULE, model={**_MAE_AUTOENCODER,
                                                      "decoders": {**_SAME_TARGET_DECODERS, "share": True}}),
    _preset("2023-01-12-vit-ae-separate-decoders", "2023.01.12",
            "ViT autoencoder, MAE masking (75%) in the encoder, two decoders with separate weights on the same "
            f"input, learnable position embeddings; assumes {_TARGET_ASSUMED}",
            data=_DATA, schedule=_AE_SCHEDULE, model={**_MAE_AUTOENCODER,
                                                      "decoders": {**_SAME_TARGET_DECODERS, "share": False}}),
    _preset("2023-01-12-mae-two-decoders-different-targets", "2023.01.12",
            "Not the journal's: the separate pair with different targets, masked pixels (A) vs per-patch "
            "normalised pixels (B, MAE's norm_pix_loss; mostly noise on shapes' flat background)",
            data=_DATA, schedule=_AE_SCHEDULE,
            model={**_MAE_AUTOENCODER, "decoders": {**_SAME_TARGET_DECODERS, "share": False,
                                                    "second": {"target": "normalized"}}}),
]

_PRESET_LIST = [
    _preset("tiny", "", "Smallest useful run: 1-layer ViT, disc and one masked decoder, 20 episodes (smoke test)",
            data={**_DATA, "samples_per_class": 20},
            schedule={"episodes": 20, "eval_every": 10, "image_every": 10, "checkpoint_every": 10,
                      "eval_episodes": 4, "final_eval_episodes": 40},
            model={**_VIT1, "discriminator": {"enabled": True, "hidden_dim": 32}, "masking": {"ratio": 0.5},
                   "decoders": {"count": 1}}),
    *_JOURNAL_PRESETS,
    *(_journal_scale(p) for p in _JOURNAL_PRESETS),
]

PRESET_INFO: dict[str, Preset] = {p.name: p for p in _PRESET_LIST}
PRESETS: dict[str, RunConfig] = {p.name: p.config for p in _PRESET_LIST}


def preset(name: str) -> RunConfig:
    """The preset called `name`, or ConfigError listing the known names."""
    if name not in PRESETS:
        raise ConfigError([Problem("preset", f"unknown preset {name!r}; known: {', '.join(PRESETS)}")])
    return PRESETS[name]
