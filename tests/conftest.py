"""Shared fixtures."""

from __future__ import annotations

import pytest
import torch

from engine.config import PRESETS, RunConfig
from tests.helpers import tiny

# Two cores: keep torch from oversubscribing them.
torch.set_num_threads(2)


@pytest.fixture
def tiny_config() -> RunConfig:
    return tiny(PRESETS["tiny"], "schedule.episodes=8", "schedule.eval_every=4", "schedule.image_every=4",
                "schedule.checkpoint_every=4")
