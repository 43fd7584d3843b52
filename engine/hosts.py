"""This host, as the notebook's workers on several hosts see it: its id, the GPUs it offers, and whether it can
reach the shared artifact root. No torch here (a loaded one is asked, never imported)."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path

import psutil


def this_host_id() -> str:
    """How this host names itself to the notebook: $LAB_HOST_ID, else its hostname."""
    return os.environ.get("LAB_HOST_ID") or socket.gethostname()


def gpu_names(gpu_ids: list[str]) -> list[str]:
    """The name of each of `gpu_ids` (CUDA_VISIBLE_DEVICES entries: host indices or UUIDs), e.g. "NVIDIA H100 80GB
    HBM3", from NVML, which never initialises CUDA in the worker; without NVML, from torch when it is loaded
    already; else "GPU <id>" (a run pinned to a GPU kind then waits for a worker that can say)."""
    if not gpu_ids:
        return []
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - no NVIDIA driver or library: ask torch, or leave them unnamed
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.device_count() == len(gpu_ids):
            return [torch.cuda.get_device_name(index) for index in range(len(gpu_ids))]
        return [f"GPU {gpu}" for gpu in gpu_ids]
    try:
        names = []
        for gpu in gpu_ids:
            try:
                handle = (pynvml.nvmlDeviceGetHandleByIndex(int(gpu)) if gpu.isdigit()
                          else pynvml.nvmlDeviceGetHandleByUUID(gpu))
                name = pynvml.nvmlDeviceGetName(handle)
                names.append(name.decode() if isinstance(name, bytes) else name)
            except Exception:  # noqa: BLE001
                names.append(f"GPU {gpu}")
        return names
    finally:
        pynvml.nvmlShutdown()


class ArtifactRootUnavailable(RuntimeError):
    """This host cannot keep run files under the artifact root: a worker here must not take runs."""


def check_artifact_root(root: Path, host_id: str, *, create: bool) -> Path:
    """`root`, made sure of: it exists (made first when `create`, as the older local runs folder is) and this
    host can write there. A shared root is never made: a missing one is a folder not mounted on this host."""
    if create:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise ArtifactRootUnavailable(
            f"the artifact root {root} does not exist on host {host_id}: is the shared folder mounted here? Set "
            "$LAB_ARTIFACT_ROOT (or --artifact-root) to where this host mounts it; the worker does not start")
    try:
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise ArtifactRootUnavailable(
            f"the artifact root {root} is not writable on host {host_id} ({error.strerror}): checkpoints and "
            "output logs go there; the worker does not start") from None
    return root


__all__ = ["ArtifactRootUnavailable", "check_artifact_root", "gpu_names", "this_host_id"]


def process_is_running(pid: int) -> bool:
    """Is `pid` a live process (not a zombie its parent has yet to reap)?"""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
