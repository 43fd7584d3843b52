"""How fast a run computes: its FLOPs per training step (counted once, by PyTorch's own FLOP counter over one
forward and backward), the TFLOP/s that makes at each step's speed, and on a GPU whose dense bf16 peak is known,
the model FLOP utilisation (MFU): achieved / peak."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s; the first name found in the
# device's name wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("GH200", 989.0), ("B200", 2250.0),
                    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0),
                    ("A6000", 155.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0))


def peak_bf16_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None where it is not known (any CPU, an unlisted GPU)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for known, peak in PEAK_BF16_TFLOPS if known in name), None)


class StepFlops:
    """Counts one training step's FLOPs (forward and backward) the first time it is used, then nothing."""

    def __init__(self) -> None:
        self.per_step: int | None = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        if self.per_step is not None:
            yield
            return
        with FlopCounterMode(display=False) as counter:
            yield
        self.per_step = counter.get_total_flops()


def throughput_metrics(flops_per_step: int | None, seconds: float, peak_tflops: float | None) -> dict[str, float]:
    """`perf/tflops` (achieved, all processes together) and, with a known peak, `perf/mfu` (0..1)."""
    if not flops_per_step or seconds <= 0:
        return {}
    achieved = flops_per_step / seconds / 1e12
    return {"perf/tflops": achieved, **({"perf/mfu": achieved / peak_tflops} if peak_tflops else {})}
