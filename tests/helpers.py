"""Tiny configs so every test trains in seconds on two CPU cores, polling with a deadline, and the CPU time of some
work (for the tests that compare two costs)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, NoReturn

import pytest

from engine.config import RunConfig, with_overrides

TINY = [
    "data.image_size=16", "data.samples_per_class=12", "data.n_way=3", "data.k_shot=2", "data.q_queries=2",
    "model.encoder.embed_dim=32", "model.encoder.depth=1", "model.encoder.num_heads=2",
    "model.decoders.embed_dim=32", "model.decoders.num_heads=2",
]


def tiny(cfg: RunConfig, *extra: str) -> RunConfig:
    """`cfg` shrunk to a 1-layer, width-32 ViT on 16-px images, 3-way episodes."""
    return with_overrides(cfg, [*TINY, *extra])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    """Poll `predicate` until it returns something truthy (and return that), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def cpu_seconds(work: Callable[[], object], rounds: int = 3) -> float:
    """This process's CPU time for `work`, the best of `rounds`. Not wall time: CI runs three test files at once on
    two cores, beside mypy, and a wall-clock ratio of two costs measured a few seconds apart once read 3.6 x where
    their CPU times read 1.5 x, with three busy loops beside them or without."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return best


def answers(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def server_is_healthy(port: int) -> bool:
    """Whether the Streamlit server on `port` answers its health endpoint."""
    return answers(f"http://127.0.0.1:{port}/_stcore/health")


def stop_processes(processes, timeout: float = 60) -> None:
    """Ask every started process still running to end (SIGTERM), then wait for each, killing one that ignores it
    for `timeout` seconds: what a test or bench does with the workers and servers it started."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def workers_serving(runs_dir) -> list[int]:
    """Pids of `engine worker` processes whose --runs-dir is `runs_dir` (Linux /proc): the one an app started, found
    even before it has registered itself in the notebook (on a loaded machine it may still be importing torch)."""
    wanted = str(runs_dir)
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            words = [w.decode(errors="replace") for w in (proc / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if "worker" in words and any(a == "--runs-dir" and b == wanted for a, b in zip(words, words[1:])):
            pids.append(int(proc.name))
    return pids


def missing_service(reason: str) -> NoReturn:
    """A test whose service (PostgreSQL, libfaketime, Chromium, Slurm) is missing skips and says why; under CI,
    where tests/services.sh must have started it, it fails instead, so a service that did not start is loud."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI this service must be there: {reason}")
    pytest.skip(reason)


def fresh_postgres_database() -> tuple[str, Callable[[], None]]:
    """A new, empty database beside $LAB_NOTEBOOK_TEST_PG_URL's: its URL and a function that drops it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    admin_url = os.environ["LAB_NOTEBOOK_TEST_PG_URL"]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)  # survives a restart
    name = f"notebook_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"

    def drop() -> None:
        # FORCE ends this role's leftover connections; a server process of another role (autovacuum, say) makes
        # it refuse for a moment: try again until it has gone.
        deadline = time.monotonic() + 30
        while True:
            try:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except (ProgrammingError, OperationalError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        admin.dispose()

    return url, drop


def claimed(notebook, run_id: int):
    """Run `run_id` (the oldest queued one) as a worker would: its new attempt."""
    attempt = notebook.claim_next_run("test-worker")
    assert attempt is not None and attempt.run_id == run_id, f"expected to claim run {run_id}, got {attempt}"
    return attempt


def counted_image_folder(root, classes: int = 10, per_class: int = 20) -> None:
    """A folder dataset's layout, with empty .png files: enough for the submit-time split check, which counts
    files per class without decoding them (training on it would skip them all as unreadable)."""
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            (root / f"class{c}" / f"{i}.png").write_bytes(b"")
