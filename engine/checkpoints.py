"""Checkpoints: model, optimiser, RNG states, config and step, written atomically; the last good one kept in
memory too, so the divergence guard can roll back without a disk."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_PATTERN = "step_*.pt"


class CheckpointError(ValueError):
    """A checkpoint file that is not safe or not complete enough to load."""


def capture_state(*, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  sampler_state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """Everything exact resume needs, detached from the live objects (a deep copy)."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return copy.deepcopy({
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler": sampler_state,
        "rng": rng,
        "config": config,
    })


def restore_weights(state: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Model and optimiser only (what a rollback restores)."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint file, or the newest one in a folder."""
    path = Path(path)
    if path.is_dir():
        newest = latest_checkpoint(path)
        if newest is None:
            raise FileNotFoundError(f"no checkpoint ({CHECKPOINT_PATTERN}) in {path}")
        path = newest
    try:
        # weights_only: a checkpoint is data. A crafted file that needs arbitrary objects (and could run code while
        # it is unpickled) is refused rather than loaded.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: not a plain checkpoint (it holds objects other than tensors, numbers, "
                              f"strings, lists and dicts), refused: {str(error).splitlines()[0]}") from error


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = sorted(Path(directory).glob(CHECKPOINT_PATTERN))
    return found[-1] if found else None


class Checkpointer:
    """Saves states to `directory` (if any), keeping the newest `keep` files, and remembers the last one."""

    def __init__(self, directory: str | Path | None, keep: int = 3) -> None:
        self.directory = Path(directory) if directory else None
        self.keep = keep
        self.last_good: dict[str, Any] | None = None

    def remember(self, state: dict[str, Any]) -> None:
        self.last_good = state

    def save(self, state: dict[str, Any]) -> Path | None:
        self.remember(state)
        if self.directory is None:
            return None
        # Not `parents=True`: if the run's folder was deleted meanwhile, a late writer must not bring it back.
        self.directory.mkdir(exist_ok=True)
        path = self.directory / f"step_{state['step']:09d}.pt"
        partial = path.with_suffix(".pt.partial")
        torch.save(state, partial)
        os.replace(partial, path)  # a crash mid-write never leaves a truncated checkpoint under the real name
        for old in sorted(self.directory.glob(CHECKPOINT_PATTERN))[: -self.keep]:
            old.unlink(missing_ok=True)
        return path
