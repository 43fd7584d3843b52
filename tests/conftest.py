"""Shared fixtures."""

from __future__ import annotations

import os
import time
from pathlib import Path

# CI machines are busy: OpenMP threads that spin while they wait collapse when another process shares the cores
# (a tiny run: 80 steps/s with 2 spinning threads beside a CPU-bound process, 250 with 1). Set before torch loads;
# the worker and run processes the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402
from sqlalchemy import make_url  # noqa: E402

from engine.config import RunConfig  # noqa: E402
from engine.presets import PRESETS  # noqa: E402
from tests.helpers import fresh_postgres_database, missing_service, tiny  # noqa: E402
from tests.tcp_proxy import CuttableProxy  # noqa: E402

# Test models are tiny: one thread is as fast as two here, and cannot be starved by a neighbour.
torch.set_num_threads(1)


# The slow lane (`pytest -m slow`; `-m "not slow"` is the fast one): tests that start processes (a worker, ranks,
# Slurm jobs, an app server), drive a browser, or soak. Marked here by the fixtures that start those, and by file for
# the tests that start their own subprocesses, so that a new test of that kind lands in the slow lane by itself.
SLOW_FIXTURES = {"app_server", "browser", "page", "start_worker", "worker", "impatient_worker", "straight"}
SLOW_FILES = {"test_slurm.py", "test_lifecycle_soak.py", "test_distributed.py", "test_hosts.py", "test_worker.py",
              "test_compose.py", "test_cli.py", "test_provenance.py", "test_schema_lock.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def tiny_config() -> RunConfig:
    return tiny(PRESETS["tiny"], "schedule.episodes=8", "schedule.eval_every=4", "schedule.image_every=4",
                "schedule.checkpoint_every=4")


def _our_engine_processes() -> list[str]:
    """Worker, run and rank processes started from this checkout (Linux /proc), other than this one; under
    pytest-xdist, only those started by this pytest process's own share of the tests (they inherit its
    PYTEST_XDIST_WORKER), since the other shares may still be running theirs."""
    root = str(Path(__file__).resolve().parents[1])
    share = os.environ.get("PYTEST_XDIST_WORKER")
    ours = f"PYTEST_XDIST_WORKER={share}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(proc / "cwd")
            if share is not None and ours not in (proc / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        started_here = cwd.startswith(root) and (
            "engine" in words and bool({"worker", "run-child", "rank"} & set(words))
            or any("multiprocessing.forkserver" in w for w in words))  # a warm launcher and the runs it forked
        if started_here:
            found.append(f"{proc.name}: {' '.join(words)[:200]}")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_engine_process_outlives_the_tests():
    """Every worker or run process a test starts must be gone when the suite ends (none left to run on)."""
    yield
    if not Path("/proc").is_dir():
        return
    deadline = time.monotonic() + 60
    while _our_engine_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    left = _our_engine_processes()
    assert not left, "engine processes left running after the tests:\n" + "\n".join(left)


@pytest.fixture
def empty_postgres_url():
    """A fresh, empty PostgreSQL database of the test's own (a team's notebook), dropped after it."""
    if not os.environ.get("LAB_NOTEBOOK_TEST_PG_URL"):
        missing_service("PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL (as .ci/run does) for a team's notebook on one "
                        "server")
    url, drop = fresh_postgres_database()
    yield url
    drop()


@pytest.fixture
def cuttable_postgres(empty_postgres_url):
    """(URL through a proxy a test can cut, the direct URL, the proxy): an outage as a client sees one, while the
    server the other tests use (three files at a time) stays up."""
    direct = make_url(empty_postgres_url)
    proxy = CuttableProxy((direct.host or "127.0.0.1", direct.port or 5432))
    through = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield through, empty_postgres_url, proxy
    proxy.close()
