"""Script runs, end to end: a real worker runs the researcher's own command (tests/scripts/*.py, and small scripts
written here), tails its TensorBoard logdir, obeys Stop with SIGTERM then SIGKILL, and ends the run from the exit
code. Every wait polls the notebook with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import jobs
from engine.config import ConfigError
from engine.script_job import validate_script
from lab_notes import Notebook
from tests.helpers import missing_service, stop_processes, wait_for

ROOT = Path(__file__).resolve().parents[2]
# A SummaryWriter script without lab_notes, a Lightning fit (NotebookLogger), a plain lab_notes.start_run script.
SCRIPTS = sorted(p for p in (ROOT / "tests" / "scripts").glob("*.py") if "EXPECTED_METRICS" in p.read_text())
STOP_GRACE = "2"  # the test worker's SIGTERM-to-SIGKILL grace, seconds


@pytest.fixture
def start_worker(notebook, tmp_path, monkeypatch):
    """A worker on `notebook` whose script runs may run code under the repository or tmp_path (LAB_CODE_DIR = /)."""
    monkeypatch.setenv("LAB_CODE_DIR", "/")
    started: list[subprocess.Popen] = []

    def start(*extra: str, **env: str) -> subprocess.Popen:
        log = open(tmp_path / "worker.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", notebook.url, "--runs-dir",
                                    str(tmp_path / "runs"), *extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "LAB_SCRIPT_STOP_GRACE_SECONDS": STOP_GRACE, **env})
        log.close()
        started.append(process)
        return process

    yield start
    stop_processes(started)


def launch(notebook: Notebook, command: list[str], workdir: Path, **values) -> int:
    job = validate_script({"command": command, "workdir": str(workdir), **values})
    return jobs.submit_script(notebook, job, name=Path(command[1] if len(command) > 1 else command[0]).name).run_id


def ended(notebook: Notebook, run_id: int, timeout: float = 120):
    """The run once it reached a final status and its worker reaped the process (its exit code recorded, and
    its output copied: the process always says how its script ended)."""
    return wait_for(lambda: (run := notebook.get_run(run_id)).status not in ("queued", "running")
                    and run.exit_code is not None and f"run {run_id}: ended " in run.log_tail and run, timeout,
                    f"run {run_id} to end")


def notebook_metrics(notebook: Notebook, run_id: int) -> dict[str, dict[int, str]]:
    """Every metric but the system's, {key: {step: repr(value)}}: repr, so a NaN equals a NaN."""
    return {key: {int(step): repr(float(value)) for step, value in zip(*notebook.metric_history(run_id, key))}
            for key in notebook.metric_keys(run_id) if not key.startswith("sys/")}


def write_script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(body)
    return path


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_a_script_launched_through_the_worker_records_exactly_what_it_logged(notebook, start_worker, tmp_path, script):
    expected_file = tmp_path / "expected.json"
    run_id = launch(notebook, [sys.executable, str(script), "--steps", "20"], ROOT,
                    env={"EXPECTED_METRICS": str(expected_file)})
    start_worker()
    run = ended(notebook, run_id)
    assert (run.status, run.exit_code) == ("completed", 0), run.log_tail
    logged = {key: {int(step): repr(float(value)) for step, value in steps.items()}
              for key, steps in json.loads(expected_file.read_text()).items()}
    assert notebook_metrics(notebook, run_id) == logged
    provenance = notebook.snapshots(run_id, "provenance")[0].payload
    assert provenance["cwd"] == str(ROOT) and provenance["git"]["commit"]  # the script's own repository
    assert provenance["command"][1] == str(script)
    assert provenance["packages"]["torch"]  # as the script's interpreter sees them
    assert any(key.startswith("sys/") for key in notebook.metric_keys(run_id))  # the script's system metrics
    if script.stem == "summary_writer":  # images, text and hparams come through TensorBoard too
        assert notebook.image_keys(run_id) == ["weights"] and notebook.image_steps(run_id, "weights") == [0, 5, 10, 15]
        texts = {s.step: s.payload["text"] for s in notebook.snapshots(run_id, "text")}
        assert texts == {step: f"<b>step</b> {step}" for step in (0, 5, 10, 15)}
        assert notebook.snapshots(run_id, "hparams")[0].payload == {"lr": 0.1, "steps": 20.0}
        assert "done: 20 steps" in run.log_tail


def test_points_appear_while_the_script_still_runs(notebook, start_worker, tmp_path):
    """The logdir is tailed live: the first point is in the notebook before the script is let go on."""
    release = tmp_path / "release"
    script = write_script(tmp_path, "live.py", f"""
import os, time
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter(os.environ["TENSORBOARD_LOGDIR"], flush_secs=1)
writer.add_scalar("loss", 0.5, 1)
writer.flush()
while not os.path.exists({str(release)!r}):
    time.sleep(0.05)
writer.add_scalar("loss", 0.25, 2)
writer.close()
""")
    run_id = launch(notebook, [sys.executable, str(script)], tmp_path)
    start_worker()
    wait_for(lambda: notebook.metric_history(run_id, "loss")[0].tolist() == [1], 120, "the first point, live")
    assert notebook.get_run(run_id).status == "running"
    release.touch()
    assert ended(notebook, run_id).status == "completed"
    assert [a.tolist() for a in notebook.metric_history(run_id, "loss")] == [[1, 2], [0.5, 0.25]]


def test_exit_codes_become_the_status_and_bad_commands_fail_at_once_with_the_reason(notebook, start_worker, tmp_path):
    exits_3 = write_script(tmp_path, "exits_3.py", "import sys\nprint('about to fail')\nsys.exit(3)\n")
    not_executable = write_script(tmp_path, "tool.sh", "#!/bin/sh\necho hi\n")
    not_executable.chmod(0o644)
    runs = {"code 3": launch(notebook, [sys.executable, str(exits_3)], tmp_path),
            "missing script": launch(notebook, [sys.executable, "no_such_script.py"], tmp_path),
            "missing program": launch(notebook, ["./no_such_program"], tmp_path),
            "not executable": launch(notebook, ["./tool.sh"], tmp_path)}
    start_worker()
    run = ended(notebook, runs["code 3"])
    assert (run.status, run.exit_code, run.status_reason) == ("failed", 3, "the script exited with code 3")
    assert "about to fail" in run.log_tail
    # it ends before the first system sample is due (half a second in), and still leaves the machine's one
    assert "sys/util_percent/cpu" in notebook.metric_keys(runs["code 3"])
    expected = {"missing script": "command.1: the script 'no_such_script.py' does not exist",
                "missing program": "command.0: the program './no_such_program' does not exist",
                "not executable": "command.0: './tool.sh' is not executable"}
    for what, reason in expected.items():
        run = ended(notebook, runs[what])
        assert run.status == "failed" and run.status_reason.startswith(reason), (what, run.status_reason)
        assert not notebook.snapshots(runs[what], "provenance")  # it never started: nothing was recorded for it


def test_stop_sends_sigterm_and_then_sigkill_after_the_grace_period(notebook, start_worker, tmp_path):
    obeys = write_script(tmp_path, "obeys.py", """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("SIGTERM: saving and leaving", flush=True), sys.exit(0)))
print("started", flush=True)
while True:
    time.sleep(0.05)
""")
    ignores = write_script(tmp_path, "ignores.py", """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM: ignored", flush=True))
print("started", flush=True)
while True:
    time.sleep(0.05)
""")
    runs = [launch(notebook, [sys.executable, str(obeys)], tmp_path), launch(notebook, [sys.executable, str(ignores)], tmp_path)]
    start_worker("--max-parallel", "2")
    for run_id in runs:
        wait_for(lambda: "started" in notebook.get_run(run_id).log_tail, 120, "the script to start")
        jobs.request_stop(notebook, run_id)
    polite, stubborn = (ended(notebook, run_id) for run_id in runs)
    assert (polite.status, polite.exit_code) == ("stopped", 0)
    assert "SIGTERM: saving and leaving" in polite.log_tail
    assert (stubborn.status, stubborn.exit_code) == ("stopped", 137)  # SIGKILL, as a shell says it
    assert "SIGTERM: ignored" in stubborn.log_tail and "signal 9 (SIGKILL)" in stubborn.status_reason
    assert f"SIGKILL in {STOP_GRACE} s" in stubborn.log_tail


def test_a_working_folder_outside_the_code_root_is_refused_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path / "code"))
    (tmp_path / "code" / "project").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "code" / "escape").symlink_to(tmp_path / "elsewhere")
    assert validate_script({"command": ["python", "x.py"], "workdir": "project"}).folder() == \
        (tmp_path / "code" / "project").resolve()
    for outside in (str(tmp_path / "elsewhere"), "../elsewhere", "escape"):
        with pytest.raises(ConfigError) as refused:
            validate_script({"command": ["python", "x.py"], "workdir": outside})
        assert refused.value.problems[0].path == "workdir" and "outside the code folder" in str(refused.value)
    with pytest.raises(ConfigError) as reserved:
        validate_script({"command": ["python"], "workdir": "project", "env": {"LAB_ATTEMPT_TOKEN": "x"}})
    assert reserved.value.problems[0].path == "env" and "LAB_ATTEMPT_TOKEN" in str(reserved.value)


def test_a_run_name_the_notebook_cannot_store_is_refused_by_launch_naming_it(tmp_path, monkeypatch, capsys):
    """Over 200 characters, PostgreSQL refused the row with a raw DataError traceback; SQLite took it."""
    from engine.cli import main

    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    code = main(["launch", "--db", url, "--workdir", str(tmp_path), "--name", "n" * 201, "--", "python", "x.py"])
    assert code == 2 and "error: --name 'nnnn" in capsys.readouterr().err
    assert main(["launch", "--db", url, "--workdir", str(tmp_path), "--name", "a\x00b", "--", "python", "x.py"]) == 2
    assert "--name: must not hold a NUL character" in capsys.readouterr().err
    with Notebook(url) as notebook:
        assert notebook.list_runs() == []


def test_a_script_run_on_slurm_completes_with_what_it_logged(notebook, start_worker, tmp_path):
    if not os.environ.get("LAB_TEST_SLURM") and os.environ.get("CI") != "true":
        missing_service("no Slurm: source tests/slurm.sh (as root with apt) to start a single-node one")
    script = ROOT / "tests" / "scripts" / "summary_writer.py"
    expected_file = tmp_path / "expected.json"
    run_id = launch(notebook, [sys.executable, str(script), "--steps", "10"], ROOT,
                    env={"EXPECTED_METRICS": str(expected_file)},
                    runtime={"executor": "slurm", "system_metrics_seconds": 0})
    start_worker()
    try:
        run = ended(notebook, run_id, timeout=300)
    finally:
        for snapshot in notebook.snapshots(run_id, "slurm"):
            subprocess.run(["scancel", snapshot.payload["job_id"]], capture_output=True)
    assert (run.status, run.exit_code) == ("completed", 0), run.log_tail
    assert notebook.snapshots(run_id, "slurm")  # it went through Slurm, as a job
    logged = json.loads(expected_file.read_text())
    assert notebook_metrics(notebook, run_id) == {k: {int(s): repr(float(v)) for s, v in steps.items()}
                                                 for k, steps in logged.items()}


def test_processes_start_that_many_copies_each_with_its_rank_and_only_rank_0_attaches(notebook, start_worker, tmp_path):
    script = write_script(tmp_path, "ranks.py", """
import os
with open(f"rank-{os.environ['RANK']}.txt", "w") as out:
    out.write(f"{os.environ['WORLD_SIZE']} {os.environ['MASTER_PORT']} {os.environ.get('LAB_RUN_ID', '-')}")
""")
    run_id = launch(notebook, [sys.executable, str(script)], tmp_path, runtime={"processes": 3})
    start_worker()
    assert ended(notebook, run_id).status == "completed"
    said = {path.name: path.read_text().split() for path in tmp_path.glob("rank-*.txt")}
    assert sorted(said) == ["rank-0.txt", "rank-1.txt", "rank-2.txt"]
    assert {words[0] for words in said.values()} == {"3"} and len({words[1] for words in said.values()}) == 1
    assert [said[f"rank-{r}.txt"][2] for r in range(3)] == [str(run_id), "-", "-"]


def test_a_script_killed_with_sigkill_fails_its_run_saying_so(notebook, start_worker, tmp_path):
    script = write_script(tmp_path, "sleeper.py", """
import os, time
open("pid", "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
""")
    run_id = launch(notebook, [sys.executable, str(script)], tmp_path)
    start_worker()
    pid = int(wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 120, "the script"))
    os.kill(pid, 9)
    run = ended(notebook, run_id)
    assert (run.status, run.exit_code) == ("failed", 137)
    assert run.status_reason == "the script was killed by signal 9 (SIGKILL)"


def test_when_the_process_beside_the_script_is_killed_the_script_goes_too_and_the_run_fails(notebook, start_worker,
                                                                                              tmp_path):
    script = write_script(tmp_path, "sleeper.py", """
import os, time
open("pid", "w").write(str(os.getpid()))
while True:
    time.sleep(0.05)
""")
    run_id = launch(notebook, [sys.executable, str(script)], tmp_path)
    start_worker()
    pid = int(wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 120, "the script"))
    os.kill(notebook.get_run(run_id).pid, 9)  # the run's process: the one the worker started, beside the script
    run = wait_for(lambda: (r := notebook.get_run(run_id)).status == "failed" and r, 60, "the run to fail")
    assert "signal 9" in run.status_reason
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
             30, "the script to be gone")


def test_provenance_lists_the_packages_the_scripts_own_interpreter_sees(tmp_path, monkeypatch):
    from engine.provenance import package_versions
    from engine.script_runs import script_packages

    monkeypatch.setenv("LAB_CODE_DIR", str(tmp_path))
    mine = validate_script({"command": [sys.executable, "train.py"], "workdir": str(tmp_path)})
    assert script_packages(mine, dict(os.environ)) == package_versions()
    bare = tmp_path / "bare"  # an interpreter whose packages are not the engine's: it sees no torch
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    theirs = validate_script({"command": [str(bare / "bin" / "python"), "train.py"], "workdir": str(tmp_path)})
    seen = script_packages(theirs, {"PATH": os.environ["PATH"]})
    assert seen is not None and seen["torch"] is None and set(seen) == set(package_versions())
    assert script_packages(validate_script({"command": ["./run.sh"], "workdir": str(tmp_path)}), {}) is None
