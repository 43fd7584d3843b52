"""The tracking client as scripts use it, in processes of their own: the must-show scripts record what they logged;
a script killed with -9 is ended as failed by the reaper; Ctrl-C stops its run; a 30 s database outage loses
nothing, and a longer one is counted and said."""

from __future__ import annotations

import csv
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_notes import Notebook, start_run
from tests.helpers import wait_for

pytestmark = pytest.mark.slow  # processes of their own, and a 30 s outage

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "tests" / "scripts"
OUTAGE_SECONDS = 30.0


def script(name: str, url: str, *args: str, cwd: Path) -> subprocess.Popen:
    """`python tests/scripts/<name> args` from `cwd` (another folder: the package is found as installed), with
    SIGINT at its default (a background test runner may have ignored it, and children inherit that)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_NOTEBOOK_URL=url, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(SCRIPTS / name), *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def printed(process: subprocess.Popen, prefix: str, timeout: float = 120) -> str:
    """The rest of the first stdout line starting with `prefix`, read with a deadline."""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix):].strip()
            if not line and process.poll() is not None:
                break
    raise AssertionError(f"no {prefix!r} line from the script; its stderr:\n{process.stderr.read()[-3000:]}")


def points(notebook: Notebook, run_id: int, key: str) -> list[tuple[int, float]]:
    steps, values = notebook.metric_history(run_id, key)
    return list(zip(steps.tolist(), values.tolist()))


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(s == t and (v == w or (math.isnan(v) and math.isnan(w)))
                                    for (s, v), (t, w) in zip(a, b))


def test_the_plain_script_records_exactly_what_it_logged(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    process = script("plain_start_run.py", url, "--record", str(tmp_path / "logged.json"), cwd=tmp_path)
    run_id = int(printed(process, "run "))
    assert process.wait(timeout=120) == 0, process.stderr.read()
    logged = json.loads((tmp_path / "logged.json").read_text())
    with Notebook(url) as notebook:
        run = notebook.get_run(run_id)
        assert (run.status, run.name, run.config) == ("completed", "plain start_run script", {"steps": 12, "lr": 1e-3})
        assert sorted(notebook.metric_keys(run_id)) == sorted(logged)
        for key, expected in logged.items():
            assert same(points(notebook, run_id, key), [tuple(p) for p in expected]), key
        assert notebook.image_steps(run_id, "reconstruction") == [2]
        assert [n.run_ids for n in notebook.list_notes(run_id)] == [[run_id]]


def test_a_lightning_fit_records_a_run_equal_to_what_lightning_logged(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    process = script("lightning_fit.py", url, "--csv-dir", str(tmp_path / "csv"), cwd=tmp_path)
    run_id = int(printed(process, "run ", timeout=300))
    witness = Path(printed(process, "csv "))
    assert process.wait(timeout=120) == 0, process.stderr.read()
    expected: dict[str, list[tuple[int, float]]] = {}
    with witness.open() as rows:
        for row in csv.DictReader(rows):
            for key, value in row.items():
                if key != "step" and value != "":
                    expected.setdefault(key, []).append((int(row["step"]), float(value)))
    assert {"train/loss", "val/acc", "epoch"} <= set(expected)
    with Notebook(url) as notebook:
        run = notebook.get_run(run_id)
        assert (run.status, run.name, run.config) == ("completed", "lightning fit", {"lr": 0.05, "width": 32})
        for key, want in expected.items():
            assert points(notebook, run_id, key) == sorted(want), key


def test_a_script_killed_with_9_is_ended_as_failed_by_the_reaper(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    process = script("plain_start_run.py", url, "--steps", "100000", "--pause", "0.01", cwd=tmp_path)
    run_id = int(printed(process, "run "))
    with Notebook(url) as notebook:
        beats: set = set()
        wait_for(lambda: beats.add(notebook.get_run(run_id).heartbeat_at) or len(beats) >= 3, 60,
                 "three heartbeats of the script's run")
        assert notebook.fail_stale_attempts(stale_after=6.0) == []  # alive and heartbeating: not reaped
        process.kill()
        process.wait(timeout=30)
        reaped = wait_for(lambda: notebook.fail_stale_attempts(stale_after=6.0), 60, "the reaper to end the run")
        run = notebook.get_run(run_id)
        assert reaped == [run_id] and run.status == "failed" and "heartbeat stale" in run.status_reason
        assert points(notebook, run_id, "acc/heldout")  # what it wrote before it died stays


def test_ctrl_c_stops_the_scripts_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    process = script("plain_start_run.py", url, "--steps", "100000", "--pause", "0.01", cwd=tmp_path)
    run_id = int(printed(process, "run "))
    with Notebook(url) as notebook:
        wait_for(lambda: notebook.latest_metrics(run_id), 60, "the script's first points")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) != 0
        run = notebook.get_run(run_id)
        assert (run.status, run.status_reason) == ("stopped", "interrupted (Ctrl-C)")
        last_step = points(notebook, run_id, "loss")[-1][0]
        assert len(points(notebook, run_id, "acc/heldout")) == last_step + 1  # every step up to the last kept


def test_a_30_s_outage_loses_nothing(cuttable_postgres):
    through, direct, proxy = cuttable_postgres
    logged: list[tuple[int, float]] = []
    run = start_run(name="through an outage", url=through)
    calls: list[float] = []

    def log_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            step = len(logged)
            value = math.nan if step % 97 == 0 else math.inf if step % 89 == 0 else 1.0 / (step + 1)
            started = time.perf_counter()
            run.log({"loss": value}, step=step)
            calls.append(time.perf_counter() - started)
            logged.append((step, value))
            time.sleep(0.005)

    with Notebook(direct) as watcher:
        log_for(1.0)
        wait_for(lambda: watcher.latest_metrics(run.id), 30, "points before the outage")
        proxy.cut()
        written_at_cut = len(points(watcher, run.id, "loss"))
        log_for(OUTAGE_SECONDS)
        assert len(points(watcher, run.id, "loss")) == written_at_cut, "the outage let points through"
        assert proxy.refused > 0, "the client did not try to reach the database during the outage"
        during = sorted(calls[-100:])
        proxy.restore()
        log_for(1.0)
        run.finish()
        assert run.unwritten == 0 and run.status == "completed"
        assert same(points(watcher, run.id, "loss"), logged)
        assert watcher.get_run(run.id).status == "completed"
    # logging never waited for the database: a call during the outage took no longer than one before it
    assert during[len(during) // 2] < 20 * sorted(calls[:100])[50] + 1e-4


def test_a_longer_outage_than_the_buffer_holds_is_counted_and_said(cuttable_postgres, capfd):
    through, direct, proxy = cuttable_postgres
    run = start_run(name="too long an outage", url=through, max_buffered_points=100, exit_patience=2.0)
    run.log({"loss": 1.0}, step=0)
    run.flush()
    proxy.cut()
    for step in range(1, 151):
        run.log({"loss": float(step)}, step=step)
    assert run.dropped == 50  # 100 points wait; the rest are counted, not kept
    run.finish()
    assert run.unwritten == 150
    said = capfd.readouterr().err
    assert "the notebook is unreachable" in said
    assert f"run {run.id}: 150 points or images could not be written to the notebook" in said
    proxy.restore()
    with Notebook(direct) as watcher:
        assert points(watcher, run.id, "loss") == [(0, 1.0)]
        assert watcher.get_run(run.id).status == "running"  # left to the reaper, which ends it as failed
