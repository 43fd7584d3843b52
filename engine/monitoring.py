"""What a run's machine and weights are doing while it trains: system metrics sampled in the background, and
per-layer weight and gradient norms and histograms every few steps.

The sampler thread never writes: the training loop's sink picks its latest sample up with the next step's metrics,
so sinks stay single-threaded and a slow database never stalls the sampler (or the reverse).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import psutil
import torch

from engine.machine import machine_sample, process_sample
from engine.sinks import Sink

HISTOGRAM_BINS = 48


class SystemSampler:
    """Every `interval` seconds: CPU % (machine and this process), memory used (machine) and this process's
    resident memory, and for each NVIDIA GPU its utilisation, memory used and power draw (NVML; none without an
    NVIDIA driver, silently)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.process = psutil.Process(os.getpid())
        self._latest: dict[str, float] | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._gpus = _nvml_handles()
        psutil.cpu_percent(None)
        self.process.cpu_percent(None)  # both measure from this call on
        self._thread = threading.Thread(target=self._run, name="system-metrics", daemon=True)

    def __enter__(self) -> "SystemSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        if self._gpus:
            import pynvml

            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                sample = self.sample()
            except (psutil.Error, OSError):
                continue  # a sample missed is a gap in a chart, never a failed run
            with self._lock:
                self._latest = sample

    def sample(self) -> dict[str, float]:
        values = machine_sample() | process_sample(self.process, "run_process")
        for index, handle in self._gpus:
            values.update(_gpu_sample(index, handle))
        return values

    def take(self) -> dict[str, float] | None:
        """The newest sample not yet taken, or None."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest


def _nvml_handles() -> list[tuple[int, Any]]:
    """The GPUs this process may use, numbered as CUDA numbers them here: NVML sees every GPU of the host and
    ignores CUDA_VISIBLE_DEVICES, so a run on GPU 3 (or on the CPU, with it empty) must pick its own."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        if visible is None:
            chosen: list[int | str] = list(range(count))
        else:  # indices or UUIDs, in CUDA's order
            chosen = [int(v) if v.strip().isdigit() else v.strip() for v in visible.split(",") if v.strip()]
        handles = []
        for local, device in enumerate(chosen):
            handle = (pynvml.nvmlDeviceGetHandleByIndex(device) if isinstance(device, int)
                      else pynvml.nvmlDeviceGetHandleByUUID(device))
            handles.append((local, handle))
        return handles
    except Exception:  # noqa: BLE001 - no NVIDIA driver or library: no GPU metrics, not an error
        return []


def _gpu_sample(index: int, handle: Any) -> dict[str, float]:
    import pynvml

    try:
        utilisation = pynvml.nvmlDeviceGetUtilizationRates(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
    except pynvml.NVMLError:
        return {}
    return {f"sys/util_percent/gpu{index}": float(utilisation.gpu),
            f"sys/memory_gb/gpu{index}_used": memory.used / 2**30, f"sys/power_w/gpu{index}": power}


class MonitoredSink:
    """A sink that adds the sampler's newest system metrics to the next metrics the loop logs."""

    def __init__(self, inner: Sink, sampler: SystemSampler) -> None:
        self.inner, self.sampler = inner, sampler

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        sample = self.sampler.take()
        self.inner.log_metrics(step, {**values, **sample} if sample else values)

    def log_image(self, key: str, step: int, png: bytes) -> None:
        self.inner.log_image(key, step, png)

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        self.inner.log_event(kind, payload)

    def stop_requested(self) -> bool:
        return self.inner.stop_requested()


# --- weights and gradients ---------------------------------------------------------------------------------------


def layer_group(name: str) -> str:
    """A parameter's group: its module path down to a numbered block (`encoder.blocks.0`), else two levels."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


@torch.no_grad()
def weights_and_gradients(model: torch.nn.Module) -> tuple[dict[str, float], dict[str, Any]]:
    """Per layer group: the L2 norm of its weights and of their gradients (metrics `weights/…`, `grads/…`), and
    a histogram of each (counts over HISTOGRAM_BINS equal bins between the group's min and max). Called before
    gradient clipping, so a growing gradient shows even where the optimiser never sees it."""
    grouped: dict[str, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            grouped.setdefault(layer_group(name), []).append(p)
    metrics: dict[str, float] = {}
    histograms: dict[str, Any] = {}
    # The norms are torch's: numpy's would go through OpenBLAS, whose threads spin on after the call and take the
    # cores from the next training step (bench/train_overhead.py measured that as a step slower in every 20).
    for group, params in grouped.items():
        weights = torch.cat([p.detach().double().flatten() for p in params])
        grads = [p.grad.detach().double().flatten() for p in params if p.grad is not None]
        metrics[f"weights/{group}"] = float(torch.linalg.vector_norm(weights))
        histograms[group] = {"weights": _histogram(weights.cpu().numpy())}
        if grads:
            flat = torch.cat(grads)
            metrics[f"grads/{group}"] = float(torch.linalg.vector_norm(flat))
            histograms[group]["grads"] = _histogram(flat.cpu().numpy())
    return metrics, histograms


def _histogram(values: np.ndarray) -> dict[str, Any]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"edges": [], "counts": [], "nonfinite": int(len(values))}
    counts, edges = np.histogram(finite, bins=HISTOGRAM_BINS)
    return {"edges": [float(e) for e in edges], "counts": counts.tolist(), "nonfinite": int(len(values) - len(finite))}
