"""What produced a result: the code (git commit, branch, whether the tree was dirty and its diff), the Python
packages, the hardware, the host and the command line — collected when each attempt of a run starts.

The git part imports nothing heavy (the app uses it to warn when today's code differs from a run's); torch is
read only for its CUDA and cuDNN versions and the GPUs, and only if the process has already imported it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

CODE_ROOT = Path(__file__).resolve().parents[1]  # the checkout the engine runs from
DIFF_CAP_BYTES = 1_000_000  # kept in the run folder; a longer diff is cut, and says so
DIFF_HEAD_CHARS = 20_000  # kept in the notebook, for the page
PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "pydantic", "sqlalchemy", "streamlit")


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=30)
    if done.returncode:
        raise RuntimeError(done.stderr.decode(errors="replace").strip() or f"git {' '.join(args)} failed")
    return done.stdout.decode(errors="replace")  # a latin-1 file in a diff is shown, never an error


def git_state(folder: Path = CODE_ROOT, *, with_diff: bool = False) -> dict[str, Any]:
    """{"commit", "branch", "dirty", "changed", "untracked", ["diff"]} of the repository holding `folder`, or
    {"error": why} when it is not a git checkout (an installed copy, say), git is missing or fails: provenance is
    worth recording, never worth failing a run over.

    `dirty` means tracked files differ from the commit; untracked files (a notebook, a backups folder) are listed
    but do not make the tree dirty, since they are not code the engine imports unless someone adds them."""
    try:
        commit = _git(folder, "rev-parse", "HEAD").strip()
        branch = _git(folder, "rev-parse", "--abbrev-ref", "HEAD").strip()
        status = [line for line in _git(folder, "status", "--porcelain").splitlines() if line.strip()]
        changed = [line[3:] for line in status if not line.startswith("??")]
        untracked = [line[3:] for line in status if line.startswith("??")]
        state: dict[str, Any] = {"commit": commit, "branch": branch, "dirty": bool(changed),
                                 "changed": changed[:200], "untracked": untracked[:200]}
        if with_diff and changed:
            encoded = _git(folder, "diff", "HEAD").encode()
            state["diff_bytes"] = len(encoded)
            state["diff_truncated"] = len(encoded) > DIFF_CAP_BYTES
            state["diff"] = encoded[:DIFF_CAP_BYTES].decode(errors="replace")
    except Exception as error:  # noqa: BLE001 - git missing, not a repository, too slow, anything
        return {"error": f"no git state for {folder}: {type(error).__name__}: {error}"}
    return state


def package_versions() -> dict[str, str | None]:
    """The installed version of each package that shapes a result (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware() -> dict[str, Any]:
    """CPU model and cores, memory, and the GPUs with the driver (from NVML, when there is one)."""
    import psutil

    found: dict[str, Any] = {"cpu": _cpu_model(), "cpu_cores_logical": os.cpu_count(),
                             "cpu_cores_physical": psutil.cpu_count(logical=False),
                             "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "gpus": []}
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch_threads"] = torch.get_num_threads()  # this run's share of the cores (engine.worker.device_slots)
    if torch is not None and torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            found["gpus"].append({"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)})
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            found["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no NVIDIA driver: no driver version, not an error
        pass
    return found


def environment() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    cuda = cudnn = None
    if torch is not None:
        cuda = torch.version.cuda
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": package_versions(),
            "cuda": cuda, "cudnn": cudnn}


def collect_provenance(argv: list[str] | None = None, folder: Path = CODE_ROOT) -> dict[str, Any]:
    """Everything above, as one JSON-ready document (the diff included when the tree is dirty)."""
    return {"git": git_state(folder, with_diff=True), **_safely(environment), "hardware": _safely(hardware),
            "host": socket.gethostname(), "command": _without_secrets(list(sys.argv if argv is None else argv)),
            "cwd": os.getcwd()}


def _safely(part: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return part()
    except Exception as error:  # noqa: BLE001 - a part that cannot be read is recorded as such, never fatal
        return {"error": f"{type(error).__name__}: {error}"}


def _without_secrets(argv: list[str]) -> list[str]:
    """The command line as shown to anyone who opens the run: an attempt's fencing token is not for them."""
    return [("…" if i and argv[i - 1] == "--token" else arg) for i, arg in enumerate(argv)]


def keep_diff(provenance: dict[str, Any], path: Path) -> dict[str, Any]:
    """The document the notebook stores: the diff written to `path` (the run folder's copy, capped), and only its
    head kept inline."""
    git = dict(provenance.get("git", {}))
    diff = git.pop("diff", None)
    if diff:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(diff)
        git["diff_file"] = str(path)
        git["diff_head"] = diff[:DIFF_HEAD_CHARS]
    return {**provenance, "git": git}


def code_differs(recorded: dict[str, Any], now: dict[str, Any]) -> str | None:
    """Why today's code is not the code a run ran with, in words; None when it is the same clean commit."""
    if "error" in recorded or "error" in now:
        return None
    if recorded.get("commit") != now.get("commit"):
        return f"the run ran commit {recorded.get('commit', '?')[:10]}, the code here is at {now['commit'][:10]}"
    if recorded.get("dirty") or now.get("dirty"):
        which = "the run's tree had uncommitted changes" if recorded.get("dirty") else ""
        here = "the code here has uncommitted changes" if now.get("dirty") else ""
        return " and ".join(p for p in (which, here) if p) + f" (commit {now['commit'][:10]})"
    return None
