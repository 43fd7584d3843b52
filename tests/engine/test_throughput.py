"""FLOPs per step, achieved TFLOP/s and MFU (engine/throughput.py)."""

import pytest
import torch

from engine.throughput import StepFlops, peak_bf16_tflops, throughput_metrics


def test_a_step_is_counted_once_forward_and_backward():
    layer, images = torch.nn.Linear(64, 32), torch.randn(10, 64)
    flops = StepFlops()
    for _ in range(2):
        with flops.counting():
            layer(images).sum().backward()
    # forward 2·10·64·32 multiply-adds, and the same again for the weight's gradient (the input needs none)
    assert flops.per_step == 2 * (2 * 10 * 64 * 32)


def test_tflops_and_mfu_from_the_step_time_and_the_peak():
    assert throughput_metrics(2_000_000_000_000, 0.5, None) == {"perf/tflops": 4.0}
    assert throughput_metrics(2_000_000_000_000, 0.5, 8.0) == {"perf/tflops": 4.0, "perf/mfu": 0.5}
    assert throughput_metrics(None, 0.5, 8.0) == {}


@pytest.mark.parametrize("name, peak", [("NVIDIA H200", 989.0), ("NVIDIA H100 PCIe", 756.0),
                                        ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                        ("NVIDIA GeForce GTX 1080", None)])
def test_the_peak_is_read_from_the_device_name(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert peak_bf16_tflops(torch.device("cuda")) == peak
    assert peak_bf16_tflops(torch.device("cpu")) is None
