"""The machine's own system metrics, shared by a preset run's sampler thread and a script run's supervisor. It
imports no torch: a script run's supervisor never loads it."""

from __future__ import annotations

import psutil


def machine_sample() -> dict[str, float]:
    """CPU % since the last call (the first call starts the span) and memory in use, keyed by unit
    (`sys/<unit>/<what>`) so each unit gets one chart."""
    memory = psutil.virtual_memory()
    return {"sys/util_percent/cpu": psutil.cpu_percent(None),
            "sys/memory_gb/used": (memory.total - memory.available) / 2**30}


def process_sample(process: psutil.Process, name: str) -> dict[str, float]:
    """One process's CPU % (since its last call) and resident memory, as `sys/util_percent/<name>_cpu` and
    `sys/memory_gb/<name>_rss`; psutil's error when the process is gone."""
    return {f"sys/util_percent/{name}_cpu": process.cpu_percent(None),
            f"sys/memory_gb/{name}_rss": process.memory_info().rss / 2**30}
