"""FLOPs per step, achieved TFLOP/s and MFU (engine/throughput.py)."""

import pytest
import torch
from timm.models.vision_transformer import Block

from engine import throughput
from engine.presets import PRESETS
from engine.throughput import (PEAKS, StepFlops, attention_flops, counting_flops, matmul_precision, peak_bf16_tflops,
                               peak_for, run_peak, throughput_metrics)
from tests.helpers import tiny


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


# --- the peak for the precision the run computes in (issue #23) ---------------------------------------------------


@pytest.mark.parametrize("tf32, bf16, precision, peak", [(False, False, "fp32", 19.5), (True, False, "tf32", 156.0),
                                                         (False, True, "bf16", 312.0), (True, True, "bf16", 312.0)])
def test_an_a100_run_is_measured_against_the_peak_of_its_own_precision(monkeypatch, tf32, bf16, precision, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    before = torch.backends.cuda.matmul.allow_tf32  # a property of torch's cuBLAS module: set, then put back
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        found = run_peak(torch.device("cuda"), bf16_autocast=bf16)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
    assert (found.precision, found.tflops) == (precision, peak)
    assert "A100" in found.source and "data sheet" in found.source
    assert matmul_precision(torch.device("cpu"), bf16_autocast=False) == "fp32"  # no tf32 on a CPU
    assert run_peak(torch.device("cpu"), bf16_autocast=bf16) is None


@pytest.mark.parametrize("name, bf16, fp32", [("NVIDIA H100 NVL", 835.0, 60.0), ("NVIDIA H200 NVL", 835.0, 60.0),
                                              ("NVIDIA H200", 989.0, 67.0), ("NVIDIA GH200 480GB", 989.0, 67.0),
                                              ("NVIDIA L40S", 362.0, 91.6), ("NVIDIA L4", 121.0, 30.3)])
def test_nvl_parts_have_their_own_peaks_not_the_sxm_ones(name, bf16, fp32):
    assert peak_for(name, "bf16").tflops == bf16 and peak_for(name, "fp16").tflops == bf16
    assert peak_for(name, "fp32").tflops == fp32
    assert peak_for(name, "tf32").tflops < bf16


def test_every_peak_names_its_source_and_is_dense():
    for entry in PEAKS:
        assert entry.source and entry.tflops["bf16"] >= entry.tflops.get("tf32", 0) >= entry.tflops.get("fp32", 0)
    # the A10G has no vendor data sheet: no fp32 figure is made up, so an fp32 run there has no MFU
    assert peak_for("NVIDIA A10G", "fp32") is None and peak_for("NVIDIA A10G", "bf16").tflops == 70.0


def test_an_fp32_run_reports_mfu_against_the_fp32_peak(monkeypatch):
    """The training loop end to end on a CPU, with the device's name faked to an A100's."""
    from engine.train import train
    from tests.engine.test_presets import Recorder

    monkeypatch.setattr(throughput, "device_name", lambda device: "NVIDIA A100-SXM4-80GB")
    for precision, peak in (("fp32", 19.5), ("bf16", 312.0)):
        sink = Recorder()
        cfg = tiny(PRESETS["tiny"], "schedule.episodes=2", "schedule.final_eval_episodes=0",
                   f"runtime.precision={precision}", "runtime.device=cpu")
        train(cfg, sink)
        started = dict(sink.events)["started"]
        assert started["precision"] == precision and started["peak"]["tflops"] == peak
        for step in (1, 2):
            metrics = sink.metrics[step]
            assert metrics["perf/mfu"] == pytest.approx(metrics["perf/tflops"] / peak)


# --- attention counted on every device ----------------------------------------------------------------------------

BATCH, LENGTH, WIDTH, HEADS = 3, 17, 32, 2


def test_attention_flops_match_the_closed_form_forward_and_backward():
    block = Block(WIDTH, HEADS, 4.0, qkv_bias=True)
    x = torch.randn(BATCH, LENGTH, WIDTH, requires_grad=True)
    closed_form = 4 * BATCH * HEADS * LENGTH ** 2 * (WIDTH // HEADS)
    assert attention_flops(BATCH, HEADS, LENGTH, WIDTH // HEADS) == closed_form
    with torch.no_grad(), counting_flops() as forward:
        block(x)
    assert forward.attention_added == closed_form  # the CPU counter sees only the linear layers
    with counting_flops() as step:
        block(x).sum().backward()
    assert step.attention_added == 3 * closed_form  # backward: four products of the forward's size
    assert step.total == step.counted + 3 * closed_form
    block.attn.fused_attn = False  # the unfused path is plain products: the counter sees them, nothing is added
    with torch.no_grad(), counting_flops() as unfused:
        block(x)
    assert unfused.attention_added == 0 and unfused.counted == forward.total


def test_where_the_counter_sees_attention_nothing_is_added_and_the_totals_agree():
    """The math kernel (CUDA's fallback) is plain batched products the counter sees, as it sees CUDA's fused
    kernels: nothing is counted twice, and the step's total is the same as the fused kernel's count plus the
    closed form."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    block = Block(WIDTH, HEADS, 4.0, qkv_bias=True)
    x = torch.randn(BATCH, LENGTH, WIDTH, requires_grad=True)
    with counting_flops() as fused:
        block(x).sum().backward()
    with sdpa_kernel(SDPBackend.MATH), counting_flops() as seen:
        block(x).sum().backward()
    assert fused.attention_added > 0 and seen.attention_added == 0
    assert seen.total == fused.total


def test_a_model_step_adds_attention_for_every_block_it_runs():
    from engine.models import ExperimentModel

    cfg = tiny(PRESETS["2022-12-14-vit6-1d-disc"], "model.encoder.depth=2")
    model, images = ExperimentModel(cfg), torch.rand(6, 1, 16, 16)
    labels, is_query = torch.arange(3).repeat(2), torch.tensor([False] * 3 + [True] * 3)
    with torch.no_grad(), counting_flops() as found:
        model(images, labels, is_query)
    enc = cfg.model.encoder
    assert found.attention_added == enc.depth * attention_flops(6, enc.num_heads, 1 + cfg.num_patches,
                                                                enc.embed_dim // enc.num_heads)


def test_the_timed_steps_are_not_the_counted_one(monkeypatch):
    """The counter's overhead would slow the first step: it is counted apart and every timed step runs without
    it; the training that follows is that of a run that never counted."""
    from engine import train as train_module
    from engine.train import train
    from tests.engine.test_presets import Recorder

    cfg = tiny(PRESETS["tiny"], "schedule.episodes=3", "schedule.final_eval_episodes=0")
    plain = Recorder()
    monkeypatch.setattr(train_module, "step_flops", lambda *args: 0)
    train(cfg, plain)
    monkeypatch.undo()
    counted, steps_logged_when_counting = Recorder(), []
    real_counting = throughput.counting_flops

    def watched():
        steps_logged_when_counting.append(len(counted.metrics))
        return real_counting()

    monkeypatch.setattr(train_module, "counting_flops", watched)
    train(cfg, counted)
    assert steps_logged_when_counting == [0]  # once, before the first timed step
    assert all("perf/tflops" in counted.metrics[s] for s in (1, 2, 3))
    assert "perf/tflops" not in plain.metrics[1]
    assert counted.losses() == plain.losses()  # same episodes, masks and gradients
