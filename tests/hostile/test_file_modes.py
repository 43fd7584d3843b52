"""What the notebook writes is its owner's alone: started from a shell whose umask is the usual 022, the CLI makes
the notebook file (and its -wal/-shm), a backup with its manifest, a run's folder, log and checkpoints 0600 / 0700;
LAB_UMASK=007 opens them to the group, and a bad LAB_UMASK is refused naming it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.app.conftest import ROOT
from tests.helpers import TINY


def engine(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m engine ARGS` started with umask 022, as from a usual login shell."""
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, preexec_fn=lambda: os.umask(0o022))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_under(folder: Path) -> list[Path]:
    return [folder, *folder.rglob("*")]


def test_the_notebook_its_backups_and_a_runs_files_are_the_owners_alone(tmp_path):
    db = tmp_path / "notebook.db"
    url = f"sqlite:///{db}"
    submitted = engine("submit", "--db", url, "--preset", "tiny")
    assert submitted.returncode == 0, submitted.stderr
    backed_up = engine("backup", "--db", url, "--to", f"{tmp_path / 'backups'}/")  # a folder: timestamped
    assert backed_up.returncode == 0, backed_up.stderr
    trained = engine("train", "--preset", "tiny", "--out", str(tmp_path / "run"),
                     *[f"--set={o}" for o in [*TINY, "schedule.episodes=4", "schedule.checkpoint_every=2",
                                              "schedule.eval_every=2", "schedule.image_every=2",
                                              "schedule.final_eval_episodes=2"]])
    assert trained.returncode == 0, trained.stderr

    notebook_files = [p for p in tmp_path.glob("notebook.db*")]
    backups = list((tmp_path / "backups").glob("notebook-*"))
    run_files = everything_under(tmp_path / "run")
    assert db in notebook_files and len(backups) == 2  # the backup and its manifest
    assert any("checkpoint" in p.name for p in run_files) and any(p.suffix == ".jsonl" for p in run_files)
    for path in [*notebook_files, *backups, *run_files]:
        wanted = 0o700 if path.is_dir() else 0o600
        assert mode(path) == wanted, f"{path.relative_to(tmp_path)}: {oct(mode(path))}, wanted {oct(wanted)}"
    assert mode(tmp_path / "backups") == 0o700


def test_lab_umask_007_shares_with_the_group_and_a_bad_one_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    shared = engine("submit", "--db", url, "--preset", "tiny", env={"LAB_UMASK": "007"})
    assert shared.returncode == 0, shared.stderr
    assert mode(tmp_path / "notebook.db") == 0o660
    for bad in ("rw-r-----", "777", "0o999"):
        refused = engine("submit", "--db", url, "--preset", "tiny", env={"LAB_UMASK": bad})
        assert refused.returncode == 2 and "LAB_UMASK" in refused.stderr, (bad, refused.stderr)
