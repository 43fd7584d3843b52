"""A checkpoint is data: a crafted file that would run code when unpickled is refused, and nothing runs."""

from __future__ import annotations

import os

import pytest
import torch

from engine.checkpoints import CheckpointError, load_checkpoint
from engine.train import train
from engine.sinks import JsonlSink


class RunsCode:
    """Unpickling this calls os.system (what a malicious step_*.pt would do)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    crafted = tmp_path / "step_000000004.pt"
    torch.save({"step": 4, "model": RunsCode(str(marker))}, crafted)
    with pytest.raises(CheckpointError, match="not a plain checkpoint"):
        load_checkpoint(crafted)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)  # the newest in a folder: the same refusal
    assert not marker.exists()


def test_real_checkpoints_still_load_and_resume(tiny_config, tmp_path):
    sink = JsonlSink(tmp_path / "out")
    train(tiny_config, sink, run_dir=tmp_path)
    state = load_checkpoint(tmp_path / "checkpoints")
    assert state["step"] == 8 and set(state) >= {"model", "optimizer", "sampler", "rng", "config"}
