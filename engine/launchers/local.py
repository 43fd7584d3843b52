"""How a worker starts a run's process. Importing torch, timm and the engine takes about 4 s of a 2-core machine,
which was most of the wait between Launch and the first loss point; the warm launcher pays it once.

- `WarmLauncher`: a fork server (Python's `multiprocessing` forkserver) started with the worker imports the engine
  once; each run is forked from it, ready to train. CUDA is never initialised in the server (importing torch does
  not), and nothing there runs a parallel torch op, so OpenMP's thread pool is first made in each run, after fork
  (the server's one other thread, numpy's OpenBLAS one, is stopped by OpenBLAS itself before each fork).
- `ColdLauncher`: a fresh `python -m engine run-child …` per run: the reference the warm one is measured against
  (`bench/first_point.py`), and the way to run where fork is not available.

Either way the run's process has its own session, writes its output to the run's log file, and is told the
worker's pid: it ends, failing its run, as soon as that worker is gone (`engine.run_process.run_one`).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, cast

from lab_notes import Attempt

ENGINE_ROOT = Path(__file__).resolve().parents[2]  # the repository root: engine/launchers/local.py
WARM_MODULES = ["engine.train", "engine.run_process"]  # torch, timm, the models, the notebook: what every run imports
READ_AT_LOAD = ("OMP_WAIT_POLICY",)  # settings a library reads once, when it loads: the server must have them


@dataclass(frozen=True)
class RunProcess:
    """What the worker needs of a started run: its pid, whether it ended (and how), a way to end it."""

    pid: int  # a Slurm job's id for a run started as a Slurm job (engine.launchers.slurm)
    poll: Callable[[], int | None]  # the exit code (negative: killed by that signal), or None while it runs
    kill: Callable[[], None]
    ended_because: Callable[[], str] | None = None  # how it ended, in words, when the exit code alone is not enough
    # A scheduler's job may wait in its queue before the run can heartbeat: the worker keeps its lease meanwhile.
    keeps_lease_while_alive: bool = False
    cancel_after_stop_seconds: float | None = None  # a stop was asked and it has not ended by then: kill it


class Launcher(Protocol):
    def start(self, attempt: Attempt, *, url: str, runs_dir: Path, env: dict[str, str], log: Path) -> RunProcess:
        """Start `attempt` with `env` added to its environment, its output appended to `log`."""
        ...


def start_launcher(kind: str, slots: list[dict[str, str]]) -> Launcher:
    """`warm` (the default) or `cold`; the slots' environments say what the warm server must load with."""
    if kind == "cold":
        return ColdLauncher()
    if kind != "warm":
        raise ValueError(f"launcher: {kind!r} is not one of warm, cold")
    return WarmLauncher({k: v for slot in slots for k, v in slot.items() if k in READ_AT_LOAD})


def run_child_arguments(attempt: Attempt, runs_dir: Path) -> list[str]:
    """`python -m engine …`'s arguments that run `attempt` in a fresh interpreter. A warm run records them too, as
    its command line: they are what reproduces the run by hand."""
    return ["run-child", str(attempt.run_id), "--attempt", str(attempt.number), "--token", attempt.token,
            "--runs-dir", str(runs_dir), "--worker-pid", str(os.getpid())]


class ColdLauncher:
    def start(self, attempt: Attempt, *, url: str, runs_dir: Path, env: dict[str, str], log: Path) -> RunProcess:
        # The database URL (and any password in it) goes by environment, never on a command line `ps` shows.
        with open(log, "ab") as output:
            process = subprocess.Popen([sys.executable, "-u", "-m", "engine", *run_child_arguments(attempt, runs_dir)],
                                       cwd=ENGINE_ROOT, stdout=output,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **env, "LAB_NOTEBOOK_URL": url}, start_new_session=True)
        return RunProcess(process.pid, process.poll, process.kill)


class WarmLauncher:
    def __init__(self, server_env: dict[str, str] | None = None) -> None:
        """Start the fork server now, so its imports run while the worker waits for its first run. It ends by
        itself once the worker and every run it forked have ended (they all hold its keep-alive pipe).
        `server_env` holds what must be in the environment before torch loads (OpenMP reads OMP_WAIT_POLICY
        once, when its library loads), the same for every run of this worker."""
        os.environ.update(server_env or {})  # the server inherits the worker's environment as it is now
        # the server preloads by import: the engine must be importable whatever folder the worker started in
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ENGINE_ROOT), os.environ.get("PYTHONPATH")]))
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(WARM_MODULES)
        from multiprocessing import forkserver

        forkserver.ensure_running()
        threading.Thread(target=self._say_when_warm, daemon=True, name="launcher-warmup").start()

    def _say_when_warm(self) -> None:
        """The server answers its first request once its imports are done: a probe process says when, and
        whether they worked (the server skips a preload that fails; each run would then import it itself)."""
        started = time.monotonic()
        probe = self._context.Process(target=_exit_unless_preloaded, name="warm-up")
        probe.start()
        probe.join()
        if probe.exitcode == 0:
            print(f"warm launcher ready: torch, timm and the engine imported in {time.monotonic() - started:.1f} s",
                  flush=True)
        else:
            print("warm launcher: the engine could not be preloaded; runs will import it themselves (slower start)",
                  flush=True)

    def start(self, attempt: Attempt, *, url: str, runs_dir: Path, env: dict[str, str], log: Path) -> RunProcess:
        # The URL travels over the server's private socket, never on a command line.
        process = self._context.Process(target=_forked_run, name=f"run {attempt.run_id}",
                                        args=(attempt, url, runs_dir, env, log, run_child_arguments(attempt, runs_dir)))
        process.start()
        assert process.pid is not None  # started
        return RunProcess(process.pid, lambda: process.exitcode, process.kill)


def _exit_unless_preloaded() -> None:
    sys.exit(0 if all(name in sys.modules for name in WARM_MODULES) else 1)


def _forked_run(attempt: Attempt, url: str, runs_dir: Path, env: dict[str, str], log: Path,
                arguments: list[str]) -> None:
    """A run's life in a process forked from the warm server: made to look, from inside, like the cold one."""
    os.setsid()  # a Ctrl-C meant for the worker's terminal reaches the worker, which stops its runs in order
    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides: 0600 by default
    for fd in (1, 2):
        os.dup2(output, fd)
    os.close(output)
    # as `python -u` does for the cold run: lines reach the log as said
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)
    os.environ.update({**env, "LAB_NOTEBOOK_URL": url})
    os.chdir(ENGINE_ROOT)  # where the cold run starts (multiprocessing puts us in the worker's folder)
    sys.argv = [str(ENGINE_ROOT / "engine" / "__main__.py"), *arguments]  # as `python -m engine …` would see it
    threads = env.get("OMP_NUM_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))  # read at import in the server, before this slot's share was known
    from engine.run_process import run_one

    worker_pid = int(arguments[arguments.index("--worker-pid") + 1])
    sys.exit(run_one(url, attempt, runs_dir, worker_pid))
