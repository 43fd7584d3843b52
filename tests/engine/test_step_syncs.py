"""A training step reads the device exactly once (issue 29): every metric, the gradient norm and the guard's
checks travel in one read, so a later change cannot quietly add a host-device sync that stalls the CUDA queue.

On a CPU there is no queue to stall, so the reads are counted by other means: every way a tensor's value reaches
Python (`item`, `tolist`, `float`, `int`, `bool`, `numpy`) is wrapped to count its calls, and the sink notes the
count as each step's metrics arrive. Reads made by our own code are counted, except one that is not the loop's:
`engine.losses.info_nce` branches on `counted.any()` (anchors with a positive), a sync in the loss itself that
issue 29 leaves for the losses' owner. PyTorch's own reads are not counted: Adam's `.item()` is on its step
counter, which lives on the host even on CUDA (no sync)."""

from __future__ import annotations

import sys

import pytest
import torch

from engine.presets import PRESETS
from engine.sinks import NullSink
from engine.train import train
from tests.helpers import tiny

OUR_CODE = str(__import__("pathlib").Path(__file__).resolve().parents[2])
NOT_THE_LOOP = ("engine/losses.py",)
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
