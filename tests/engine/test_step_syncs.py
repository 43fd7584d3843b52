"""A training step reads the device exactly once (issue 29): every metric, the gradient norm and the guard's
checks travel in one read, so a later change cannot quietly add a host-device sync that stalls the CUDA queue.

On a CPU there is no queue to stall, so the reads are counted by other means: every way a tensor's value reaches
Python (`item`, `tolist`, `float`, `int`, `bool`, `numpy`) is wrapped to count its calls, and the sink notes the
count as each step's metrics arrive. Reads made by our own code are counted, the losses' included
(`engine.losses.info_nce` no longer branches on `counted.any()`). PyTorch's own reads are not counted: Adam's
`.item()` is on its step counter, which lives on the host even on CUDA (no sync). The second half counts every
operation that waits for the device (boolean-mask indexes and `bincount` too), from any module."""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest
import torch
from torch.overrides import TorchFunctionMode

from engine.presets import PRESETS
from engine.sinks import NullSink
from engine.train import train
from tests.helpers import tiny

OUR_CODE = str(__import__("pathlib").Path(__file__).resolve().parents[2])
NOT_THE_LOOP: tuple[str, ...] = ()  # nothing of ours is exempt any more
READS = ("item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__")


class CountingSink(NullSink):
    def __init__(self, counter: dict[str, int]) -> None:
        self.counter, self.at_step = counter, {}

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        if "loss/total" in values:
            self.at_step[step] = dict(self.counter)


def count_reads(monkeypatch) -> dict[str, int]:
    counter = {name: 0 for name in READS}
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if (caller.startswith(OUR_CODE) and "site-packages" not in caller
                    and not caller.endswith(NOT_THE_LOOP)):
                counter[_name] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


@pytest.mark.parametrize("policy", ["stop", "skip", "rollback"])
def test_each_training_step_reads_the_device_exactly_once(monkeypatch, policy):
    cfg = tiny(PRESETS["tiny"], f'guard.policy="{policy}"', "schedule.episodes=8", "schedule.eval_every=1000",
               "schedule.image_every=1000", "schedule.checkpoint_every=1000", "schedule.histogram_every=0",
               "schedule.final_eval_episodes=0", "runtime.system_metrics_seconds=0")
    counter = count_reads(monkeypatch)
    sink = CountingSink(counter)
    result = train(cfg, sink)
    assert result.status == "completed"
    steps = sorted(sink.at_step)
    assert steps == list(range(1, 9))
    for before, after in zip(steps, steps[1:]):
        reads = {k: sink.at_step[after][k] - sink.at_step[before][k] for k in READS}
        assert reads == {**{k: 0 for k in READS}, "tolist": 1}, f"step {after} read the device: {reads}"


# --- every operation that makes the host wait for the device, wherever it is called from ------------------------

# Beyond reading a value into Python: a boolean-mask index or `nonzero` must learn how many elements are true
# before it can size its result, and `bincount` its largest input; `cpu()` copies to the host. On CUDA each of
# these waits for the queue to drain. A TorchFunctionMode sees every one of them, from any module.
WAITS_FOR_DEVICE = {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "nonzero",
                    "argwhere", "masked_select", "unique", "unique_consecutive", "bincount", "repeat_interleave",
                    "cpu"}
# The model's own episode split: `x[~is_query]` / `x[is_query]` (support and queries) and the prototypes'
# `bincount`, in engine/models (issue 29 leaves the models to their owner). Pinned here by file and count, so
# they cannot grow unnoticed: the tiny preset's step makes 9 boolean-mask indexes and 2 bincounts.
MODEL_SPLIT = {("__getitem__", "engine/models/experiment.py"): 9, ("bincount", "engine/models/heads.py"): 2}


def _indexes_with_a_mask(args: tuple) -> bool:
    index = args[1] if len(args) > 1 else None
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
               for i in (index if isinstance(index, tuple) else (index,)))


class DeviceWaits(TorchFunctionMode):
    """Counts, per (operation, file of the calling code), the operations that wait for the device. The caller is
    the first frame outside torch itself. PyTorch's optimisers are left out: Adam's `.item()` reads its step
    counter, which lives on the host even on CUDA."""

    def __init__(self) -> None:
        super().__init__()
        self.found: Counter[tuple[str, str]] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in WAITS_FOR_DEVICE or (name in ("__getitem__", "__setitem__") and _indexes_with_a_mask(args)):
            frame = sys._getframe(1)
            while frame is not None and f"{os.sep}torch{os.sep}" in frame.f_code.co_filename \
                    and f"{os.sep}torch{os.sep}optim{os.sep}" not in frame.f_code.co_filename:
                frame = frame.f_back
            where = frame.f_code.co_filename if frame is not None else "?"
            if f"{os.sep}torch{os.sep}optim{os.sep}" not in where:
                self.found[name, os.path.relpath(where, OUR_CODE)] += 1
        return func(*args, **(kwargs or {}))


class WaitsPerStep(NullSink):
    def __init__(self, mode: DeviceWaits) -> None:
        self.mode, self.at_step = mode, {}

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        if "loss/total" in values:
            self.at_step[step] = Counter(self.mode.found)


@pytest.mark.parametrize("policy", ["stop", "skip"])
def test_a_training_step_waits_for_the_device_once_outside_the_models_episode_split(policy):
    """The loop, the guard, the losses, the sink and the episode sampling add exactly one wait per step: the fused
    read of the metrics (`to_floats`'s `tolist`). The same count through a step that is skipped: the undo runs
    from on-device copies, without a read of its own."""
    cfg = tiny(PRESETS["tiny"], f'guard.policy="{policy}"', "schedule.episodes=8", "schedule.eval_every=1000",
               "schedule.image_every=1000", "schedule.checkpoint_every=1000", "schedule.histogram_every=0",
               "schedule.final_eval_episodes=0", "runtime.system_metrics_seconds=0")
    mode = DeviceWaits()
    sink = WaitsPerStep(mode)
    with mode:
        result = train(cfg, sink)
    assert result.status == "completed"
    assert sorted(sink.at_step) == list(range(1, 9))
    for step in range(2, 9):
        waits = +(sink.at_step[step] - sink.at_step[step - 1])
        assert waits == Counter({("tolist", "engine/train.py"): 1, **MODEL_SPLIT}), (
            f"step {step} waits for the device {sum(waits.values())} times: {dict(waits)}")


def test_the_counter_sees_a_wait_hidden_in_the_loss(monkeypatch):
    """The counter is not blind: a loss that branches on a tensor (as info_nce did with `counted.any()`) shows up
    as a `__bool__` from engine/losses.py."""
    import engine.losses

    real = engine.losses.info_nce

    def branching(features, labels, **kwargs):
        if (labels >= 0).any():  # the kind of sync this test exists to catch
            return real(features, labels, **kwargs)
        return features.sum() * 0.0

    monkeypatch.setattr("engine.models.experiment.info_nce", branching)
    cfg = tiny(PRESETS["tiny"], "schedule.episodes=3", "schedule.eval_every=1000", "schedule.image_every=1000",
               "schedule.checkpoint_every=1000", "schedule.histogram_every=0", "schedule.final_eval_episodes=0",
               "runtime.system_metrics_seconds=0")
    mode = DeviceWaits()
    sink = WaitsPerStep(mode)
    with mode:
        train(cfg, sink)
    waits = sink.at_step[3] - sink.at_step[2]
    assert waits[("__bool__", "tests/engine/test_step_syncs.py")] == 1, dict(waits)
