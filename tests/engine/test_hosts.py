"""Workers on several hosts, end to end: real worker and run processes, each given its own host id (and, where it
matters, its own clock or its own path to the shared artifact root), on one notebook. Every wait polls with a
deadline."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import jobs
from engine.presets import PRESETS
from lab_notes import Notebook
from lab_notes.notebook_sink import HEARTBEAT_SECONDS
from tests.helpers import missing_service, stop_processes, tiny, wait_for

ROOT = Path(__file__).resolve().parents[2]
# seconds: a run whose lease is judged by the wrong clock (10 minutes off) goes at the first sweep whatever this
# is; long enough that a warm start on a busy machine is not mistaken for a dead run
STALE_AFTER = "8"


@pytest.fixture
def start_worker(tmp_path):
    """Start `python -m engine worker --host-id HOST` on `url` with `root` as its $LAB_ARTIFACT_ROOT (and any
    more environment); each is stopped (SIGTERM, then waited for) when the test ends."""
    started: list[subprocess.Popen] = []

    def start(url: str, host: str, root: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{host}-{len(started)}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "worker", "--host-id", host, "--stale-after", STALE_AFTER, *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "LAB_NOTEBOOK_URL": url, "LAB_ARTIFACT_ROOT": str(root), **(env or {})})
        log.close()
        process.log_path = tmp_path / f"worker-{host}-{len(started)}.log"
        started.append(process)
        return process

    yield start
    stop_processes(started)


def submit(notebook: Notebook, *overrides: str, name: str = "run") -> int:
    return jobs.submit(notebook, tiny(PRESETS["tiny"], *overrides), name=name, preset="tiny").run_id


def finished(notebook: Notebook, run_id: int, expected: str = "completed") -> bool:
    """The run reached `expected` and its worker has reaped the process (exit code recorded)."""
    run = notebook.get_run(run_id)
    assert run.status not in {"completed", "failed", "stopped", "diverged"} - {expected}, (
        f"run {run_id} ended {run.status}: {run.status_reason}")
    return run.status == expected and run.exit_code is not None


def warm(*workers: subprocess.Popen) -> None:
    """Wait until each worker's launcher has imported the engine: from then on a claimed run starts in about a
    second, well within a stale period (before, its start waits for the imports, seconds on a busy machine)."""
    for worker in workers:
        wait_for(lambda: "warm launcher ready" in worker.log_path.read_text(), 120, f"{worker.log_path.name} warm")


def host_of(notebook: Notebook, run_id: int) -> str:
    return notebook.get_run(run_id).worker_id.split(":")[0]  # worker ids are host:pid:nonce


def each_step_once(notebook: Notebook, run_id: int, steps: int) -> None:
    frame = notebook.metrics_frame([run_id])
    assert not frame.duplicated(["key", "step"]).any(), "a (key, step) stored twice"
    assert frame[frame.key == "loss/total"].step.tolist() == list(range(1, steps + 1))


# --- one queue, two hosts -------------------------------------------------------------------------------------


def test_two_hosts_take_runs_from_one_queue_each_run_exactly_once(empty_postgres_url, start_worker, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    with Notebook(empty_postgres_url) as notebook:
        warm(start_worker(empty_postgres_url, "a", share), start_worker(empty_postgres_url, "b", share))
        assert {w.host for w in notebook.live_workers(15)} == {"a", "b"}
        runs = [submit(notebook, "schedule.episodes=8", name=f"r{i}") for i in range(6)]
        wait_for(lambda: all(finished(notebook, r) for r in runs), 300, "all six runs to complete")
        for run_id in runs:
            assert notebook.get_run(run_id).attempt == 1  # claimed once: no second attempt anywhere
            each_step_once(notebook, run_id, 8)
        assert {host_of(notebook, r) for r in runs} == {"a", "b"}  # both hosts took a share of the one queue
        for checkpoint in (c for r in runs for c in notebook.checkpoints(r)):
            assert not Path(checkpoint.path).is_absolute() and (share / checkpoint.path).exists()


# --- leases on the database's clock ---------------------------------------------------------------------------


def libfaketime() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1")
                   + glob.glob("/usr/local/lib/faketime/libfaketime.so.1"))
    return found[0] if found else None


def skewed(seconds: int) -> dict[str, str]:
    """The environment of a process whose every clock read (libc's clock_gettime, time, gettimeofday: Python's
    time.time and datetime.now, and libpq's) is `seconds` off, inherited by the processes it starts. libfaketime
    skews the whole process rather than the few Python functions a sitecustomize patch would reach; the monotonic
    clock is left alone (it is not a time of day; timeouts and sleeps use it)."""
    return {"LD_PRELOAD": libfaketime(), "FAKETIME": f"{seconds:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_NO_CACHE": "1"}


@pytest.mark.parametrize("skew", [600, -600], ids=["10-min-ahead", "10-min-behind"])
def test_a_worker_whose_clock_is_10_minutes_off_keeps_its_leases(empty_postgres_url, start_worker, tmp_path, skew):
    """Ahead, its reaper would fail the other host's live runs if it judged their heartbeats by its own clock;
    behind, its own runs' heartbeats would look stale to the other host's reaper. Neither may happen."""
    if libfaketime() is None:
        missing_service("needs libfaketime to skew a worker's clock (apt-get install faketime; tests/services.sh "
                    "installs it)")
    seen = subprocess.run([sys.executable, "-c", "import time, datetime; print(time.time(), "
                           "datetime.datetime.now(datetime.timezone.utc).timestamp())"],
                          env={**os.environ, **skewed(skew)}, capture_output=True, text=True, check=True)
    for clock in map(float, seen.stdout.split()):  # the skew is real in a process started so
        assert abs(clock - time.time() - skew) < 30
    share = tmp_path / "share"
    share.mkdir()
    with Notebook(empty_postgres_url) as notebook:
        episodes = "schedule.episodes=1200"  # long enough for several of each worker's reaper sweeps
        quiet = ["schedule.eval_every=1200", "schedule.image_every=1200", "schedule.checkpoint_every=1200",
                 "schedule.final_eval_episodes=0"]
        warm(start_worker(empty_postgres_url, "skewed", share, env=skewed(skew)), start_worker(empty_postgres_url, "normal", share))
        on_skewed = submit(notebook, episodes, *quiet, "runtime.host=skewed", name="on the skewed host")
        on_normal = submit(notebook, episodes, *quiet, "runtime.host=normal", name="on the normal host")
        wait_for(lambda: all(finished(notebook, r) for r in (on_skewed, on_normal)), 400, "both runs to complete")
        for run_id, host in ((on_skewed, "skewed"), (on_normal, "normal")):
            run = notebook.get_run(run_id)
            assert host_of(notebook, run_id) == host and run.attempt == 1 and run.status_reason is None
            # had either reaper judged a lease by its host's clock, the run would have gone at its first sweep
            assert (run.ended_at - run.started_at).total_seconds() > 2 * HEARTBEAT_SECONDS + 1
            each_step_once(notebook, run_id, 1200)
        worker_log = (tmp_path / "worker-skewed-0.log").read_text() + (tmp_path / "worker-normal-1.log").read_text()
        assert "stale heartbeat" not in worker_log


# --- artifacts on shared storage ------------------------------------------------------------------------------


def test_a_run_stopped_on_one_host_resumes_on_another_from_the_shared_root(start_worker, tmp_path):
    """Hosts a and b mount one share at different paths; host c is told of a folder where nothing is mounted."""
    share = tmp_path / "share"
    share.mkdir()
    for host, mount in (("hostA", "share"), ("hostB", "mnt")):
        (tmp_path / host).mkdir()
        (tmp_path / host / mount).symlink_to(share)
    on_a, on_b, on_c = tmp_path / "hostA" / "share", tmp_path / "hostB" / "mnt", tmp_path / "hostC" / "share"
    on_c.mkdir(parents=True)  # the mount point is there, the share is not
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    episodes = 400
    with Notebook(url) as notebook:
        run_id = submit(notebook, f"schedule.episodes={episodes}", f"schedule.checkpoint_every={episodes}",
                        f"schedule.eval_every={episodes}", f"schedule.image_every={episodes}",
                        "schedule.final_eval_episodes=0")
        worker_a = start_worker(url, "a", on_a)
        wait_for(lambda: len(notebook.metric_history(run_id, "loss/total")[0]) >= 20, 120, "the run to train on a")
        jobs.request_stop(notebook, run_id)
        wait_for(lambda: finished(notebook, run_id, "stopped"), 30, "the run to stop with a checkpoint")
        worker_a.terminate()
        assert worker_a.wait(timeout=60) == 0  # host a is gone
        (checkpoint,) = notebook.checkpoints(run_id)
        assert checkpoint.path == f"{run_id}/checkpoints/step_{checkpoint.step:09d}.pt"  # relative to the root
        assert 0 < checkpoint.step < episodes and (on_b / checkpoint.path).exists()
        with pytest.raises(jobs.Refused, match=r"which this host \(.+\) cannot see: is the shared folder mounted"):
            jobs.resume(notebook, run_id, runs_dir=tmp_path / "hostD" / "share")  # would throw away all it logged

        assert jobs.resume(notebook, run_id, runs_dir=on_b) == checkpoint.step
        worker_c = start_worker(url, "c", on_c)
        wait_for(lambda: finished(notebook, run_id, "failed"), 120, "the run to fail where the share is missing")
        reason = notebook.get_run(run_id).status_reason
        assert f"checkpoint {checkpoint.path} (step {checkpoint.step}) is not under the artifact root " \
               f"{on_c.resolve()} on host c: is the shared folder mounted here?" == reason
        assert notebook.metric_history(run_id, "loss/total")[0][-1] == checkpoint.step  # nothing trained there
        worker_c.terminate()
        assert worker_c.wait(timeout=60) == 0

        assert jobs.resume(notebook, run_id, runs_dir=on_b) == checkpoint.step
        start_worker(url, "b", on_b)
        wait_for(lambda: finished(notebook, run_id), 180, "the run to complete on b")
        run = notebook.get_run(run_id)
        assert host_of(notebook, run_id) == "b" and run.attempt == 3
        assert f"resuming from step {checkpoint.step} on host b" in run.log_tail
        each_step_once(notebook, run_id, episodes)  # continued from the checkpoint's step: each step once


def test_a_worker_refuses_to_start_where_the_shared_root_is_missing(tmp_path):
    missing = tmp_path / "not-mounted"
    done = subprocess.run([sys.executable, "-m", "engine", "worker", "--host-id", "lonely"], cwd=ROOT,
                          env={**os.environ, "LAB_NOTEBOOK_URL": f"sqlite:///{tmp_path / 'notebook.db'}",
                               "LAB_ARTIFACT_ROOT": str(missing)}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"the artifact root {missing} does not exist on host lonely: is the shared folder mounted here?" \
        in done.stderr
    assert not missing.exists()  # a shared root is never made where it should have been mounted


def test_submit_stores_where_a_run_may_run(notebook):
    run_id = submit(notebook, "runtime.host=gpu-box-2", "runtime.gpu_kind=H100")
    run = notebook.get_run(run_id)
    assert (run.pinned_host, run.pinned_gpu) == ("gpu-box-2", "H100")
    assert (notebook.get_run(submit(notebook)).pinned_host, notebook.get_run(submit(notebook)).pinned_gpu) == (None, None)
    # runtime.* is not swept (issue #22): a sweep's runs carry the host its base config is pinned to
    sweep = jobs.submit_sweep(notebook, tiny(PRESETS["tiny"], "runtime.host=a"), {"optim.lr": [0.01, 0.02]}, "grid",
                              name="s", preset="tiny")
    assert [notebook.get_run(r).pinned_host for r in sweep.run_ids] == ["a", "a"]
