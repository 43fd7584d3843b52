"""How fast a run computes: its FLOPs per training step (counted once, on a step of its own that is not timed, by
PyTorch's FLOP counter plus attention worked out from its shapes where the counter cannot see it), the TFLOP/s
that makes at each step's speed, and on a GPU whose peak is known, the model FLOP utilisation (MFU): achieved /
the dense peak at the precision the run's matrix products actually ran in (fp32, tf32, bf16 or fp16)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import torch
from timm.layers import Attention
from torch.utils.flop_counter import FlopCounterMode

Precision = Literal["fp32", "tf32", "bf16", "fp16"]


@dataclass(frozen=True)
class PeakEntry:
    """One GPU's dense (no structured sparsity) peaks in TFLOP/s by precision, and where the figures come from.
    Data sheets print the tensor-core figures with sparsity; the dense figure is half of that (rounded down, as
    NVIDIA's own dense quotes: 1,979 sparse -> 989). bf16/fp16 with fp32 accumulation, as training uses."""

    name: str  # matched as a substring of torch.cuda.get_device_name()
    tflops: dict[str, float]
    source: str


def _peaks(name: str, fp32: float | None, tf32: float | None, bf16: float, source: str) -> PeakEntry:
    values = {"fp32": fp32, "tf32": tf32, "bf16": bf16, "fp16": bf16}  # fp16 = bf16 on every part listed
    return PeakEntry(name, {k: v for k, v in values.items() if v is not None}, source)


# The first entry whose name is in the device's name wins, so the more specific names come first ("GH200" holds
# "H200", "H100 NVL" holds "H100", "L40" holds "L4", "A100" holds "A10").
PEAKS = (
    _peaks("GH200", 67.0, 494.0, 989.0, "NVIDIA GH200 Grace Hopper Superchip data sheet (GPU part)"),
    _peaks("H200 NVL", 60.0, 417.0, 835.0, "NVIDIA H200 NVL data sheet (per GPU)"),
    _peaks("H200", 67.0, 494.0, 989.0, "NVIDIA H200 (SXM) data sheet"),
    _peaks("H100 NVL", 60.0, 417.0, 835.0, "NVIDIA H100 NVL data sheet (per GPU)"),
    _peaks("H100 PCIe", 51.0, 378.0, 756.0, "NVIDIA H100 PCIe data sheet"),
    _peaks("H100", 67.0, 494.0, 989.0, "NVIDIA H100 SXM data sheet"),
    _peaks("B200", 75.0, 1125.0, 2250.0, "NVIDIA HGX B200 data sheet, divided by its 8 GPUs"),
    _peaks("A100", 19.5, 156.0, 312.0, "NVIDIA A100 Tensor Core GPU data sheet (SXM and PCIe alike)"),
    _peaks("A800", 19.5, 156.0, 312.0, "NVIDIA A800 data sheet"),
    _peaks("L40S", 91.6, 183.0, 362.0, "NVIDIA L40S data sheet"),
    _peaks("L40", 90.5, 90.5, 181.0, "NVIDIA L40 data sheet"),
    _peaks("L4", 30.3, 60.0, 121.0, "NVIDIA L4 data sheet"),
    _peaks("A6000", 38.7, 77.4, 154.8, "NVIDIA RTX A6000 data sheet"),
    _peaks("A10G", None, None, 70.0, "AWS EC2 G5 (A10G) figure; NVIDIA publishes no A10G data sheet"),
    _peaks("A10", 31.2, 62.5, 125.0, "NVIDIA A10 data sheet"),
    _peaks("RTX 4090", 82.6, 82.6, 165.2, "NVIDIA Ada Lovelace architecture white paper (fp32 accumulate)"),
    _peaks("RTX 3090", 35.6, 35.6, 71.0, "NVIDIA Ampere GA102 architecture white paper (fp32 accumulate)"),
)


@dataclass(frozen=True)
class Peak:
    """The figure MFU divides by: `tflops` at `precision` on `device_name`, from `source`."""

    device_name: str
    precision: Precision
    tflops: float
    source: str


def device_name(device: torch.device) -> str | None:
    """The GPU's marketing name; None for any other device (no peak is known for a CPU)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def matmul_precision(device: torch.device, bf16_autocast: bool) -> Precision:
    """What the run's matrix products compute in: bf16 under autocast; on CUDA, tf32 when PyTorch is allowed to
    use it for float32 products (`torch.backends.cuda.matmul.allow_tf32`, set by
    `torch.set_float32_matmul_precision('high')`), else fp32."""
    if bf16_autocast:
        return "bf16"
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "fp32"


def peak_for(name: str | None, precision: Precision) -> Peak | None:
    """The dense peak of the GPU called `name` at `precision`, or None (no name, an unlisted GPU or precision)."""
    if name is None:
        return None
    entry = next((e for e in PEAKS if e.name in name), None)
    if entry is None or precision not in entry.tflops:
        return None
    return Peak(name, precision, entry.tflops[precision], entry.source)


def run_peak(device: torch.device, bf16_autocast: bool) -> Peak | None:
    """The peak a run's MFU is measured against: its device's, at the precision it actually computes in."""
    return peak_for(device_name(device), matmul_precision(device, bf16_autocast))


def peak_bf16_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None where it is not known (any CPU, an unlisted GPU)."""
    peak = peak_for(device_name(device), "bf16")
    return peak.tflops if peak else None


# --- FLOPs of one step --------------------------------------------------------------------------------------------


def attention_flops(batch: int, heads: int, length: int, head_dim: int) -> int:
    """Forward FLOPs of the attention products of one block: Q·Kᵀ and softmax·V, 2·B·h·L²·d each."""
    return 4 * batch * heads * length * length * head_dim


@dataclass
class FlopCount:
    """One counted piece of work: `counted` by PyTorch's counter, `attention_added` worked out from the shapes of
    the fused attention calls the counter did not see (zero where it saw them, as on CUDA)."""

    counted: int = 0
    attention_added: int = 0
    _attention: list[int] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.counted + self.attention_added


# What attention shows up as when PyTorch's counter sees it: a fused kernel it has a formula for (CUDA's flash,
# memory-efficient and cuDNN attention) or the plain batched products of the unfused or math path.
_ATTENTION_OPS = ("scaled_dot_product", "bmm")


def _attention_seen(counter: FlopCounterMode) -> int:
    return sum(flops for op, flops in counter.get_flop_counts().get("Global", {}).items()
               if any(name in str(op) for name in _ATTENTION_OPS))


@contextlib.contextmanager
def counting_flops() -> Iterator[FlopCount]:
    """Counts everything run inside (forward and backward). On a CPU PyTorch's counter has no formula for the
    fused attention kernel (only the linear layers show, as addmm and mm), so each timm `Attention` call whose
    attention the counter did not see adds its forward FLOPs (`attention_flops`) and, when a gradient flows back
    through it, twice that again: the counter's own rule for attention's backward (four products of that size).
    A call whose attention the counter saw (on CUDA, or the unfused path anywhere) adds nothing."""
    found = FlopCount()
    counter = FlopCounterMode(display=False)
    seen_before: dict[int, int] = {}

    def before_forward(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        if isinstance(module, Attention):
            seen_before[id(module)] = _attention_seen(counter)

    def after_forward(module: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(module, Attention) or _attention_seen(counter) > seen_before.pop(id(module), 0):
            return
        batch, length, _ = args[0].shape
        forward = attention_flops(batch, module.num_heads, length, module.head_dim)
        found._attention.append(forward)
        if isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(lambda grad: found._attention.append(2 * forward))

    hooks = [torch.nn.modules.module.register_module_forward_pre_hook(before_forward),
             torch.nn.modules.module.register_module_forward_hook(after_forward)]
    try:
        with counter:
            yield found
    finally:
        for hook in hooks:
            hook.remove()
    found.counted = counter.get_total_flops()
    found.attention_added = sum(found._attention)


class StepFlops:
    """Counts one training step's FLOPs (forward and backward) the first time it is used, then nothing."""

    def __init__(self) -> None:
        self.per_step: int | None = None

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        if self.per_step is not None:
            yield
            return
        with counting_flops() as found:
            yield
        self.per_step = found.total


def throughput_metrics(flops_per_step: int | None, seconds: float, peak_tflops: float | None) -> dict[str, float]:
    """`perf/tflops` (achieved, all processes together) and, with a known peak, `perf/mfu` (0..1)."""
    if not flops_per_step or seconds <= 0:
        return {}
    achieved = flops_per_step / seconds / 1e12
    return {"perf/tflops": achieved, **({"perf/mfu": achieved / peak_tflops} if peak_tflops else {})}
