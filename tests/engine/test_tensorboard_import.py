"""TensorBoard logs into the notebook: the reader's keys, `import-tensorboard`'s one run per run folder (once),
and a truncated or corrupt event file read as far as it can be, the rest named."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch.utils.tensorboard import SummaryWriter

from engine.tensorboard_feed import import_logdir, run_folders
from engine.tensorboard_tail import LogdirTail, key_for
from lab_notes import Notebook

ROOT = Path(__file__).resolve().parents[2]


def write_run(folder: Path, lr: float, steps: int = 6) -> dict[str, dict[int, float]]:
    """A SummaryWriter run in `folder`; what it logged, as float32 (TensorBoard's scalars are)."""
    logged: dict[str, dict[int, float]] = {}
    with SummaryWriter(str(folder)) as writer:
        for step in range(steps):
            loss = 1.0 / (step + 1) * lr
            writer.add_scalar("loss/train", loss, step)
            writer.add_scalars("acc", {"train": step / 10, "heldout": step / 20}, step)
            logged.setdefault("loss/train", {})[step] = float(np.float32(loss))
            logged.setdefault("acc/train", {})[step] = float(np.float32(step / 10))
            logged.setdefault("acc/heldout", {})[step] = float(np.float32(step / 20))
        writer.add_images("samples", np.zeros((2, 3, 8, 8), dtype=np.float32), 3)
        writer.add_text("summary", "**not** <i>html</i>", 5)
        writer.add_hparams({"lr": lr, "optimizer": "sgd", "nesterov": True}, {"hparam/best": 0.5})
    logged["hparam/best"] = {0: 0.5}
    return logged


def metrics_of(notebook: Notebook, run_id: int) -> dict[str, dict[int, float]]:
    return {key: {int(s): float(v) for s, v in zip(*notebook.metric_history(run_id, key))}
            for key in notebook.metric_keys(run_id)}


def test_keys_follow_what_summary_writer_named():
    assert key_for("", "loss/train") == "loss/train"
    assert key_for("acc_heldout", "acc") == "acc/heldout"  # add_scalars("acc", {"heldout": …})
    assert key_for("loss_x_val", "loss/x") == "loss/x/val"
    assert key_for("other", "loss") == "other/loss"
    assert key_for("1796472820.94", "hparam/best", hparams_folder=True) == "hparam/best"


def test_import_makes_one_run_per_run_folder_and_importing_twice_adds_nothing(notebook, tmp_path):
    logs = tmp_path / "logs"
    expected = {"a": write_run(logs / "a", lr=0.1), "b": write_run(logs / "b", lr=0.01)}
    assert [f.name for f in run_folders(logs)] == ["a", "b"]  # add_scalars' and add_hparams' sub-folders are parts
    first = import_logdir(notebook, logs, prefix="old/")
    assert [folder.name for _, folder in first.made] == ["a", "b"] and not first.unreadable
    for run_id, folder in first.made:
        run = notebook.get_run(run_id)
        assert (run.name, run.status, run.preset) == (f"old/{folder.name}", "completed", "tensorboard")
        assert run.config["hparams"] == {"lr": 0.1 if folder.name == "a" else 0.01, "optimizer": "sgd",
                                         "nesterov": True}
        assert metrics_of(notebook, run_id) == expected[folder.name]
        assert notebook.image_keys(run_id) == ["samples"] and notebook.image_steps(run_id, "samples") == [3]
        assert [s.payload["text"] for s in notebook.snapshots(run_id, "text")] == ["**not** <i>html</i>"]
    points = sum(len(notebook.metric_history(r, k)[0]) for r, _ in first.made for k in notebook.metric_keys(r))
    again = import_logdir(notebook, logs, prefix="old/")
    assert not again.made and [r for r, _ in again.skipped] == [r for r, _ in first.made]
    assert len(notebook.list_runs()) == 2
    assert sum(len(notebook.metric_history(r, k)[0]) for r, _ in first.made for k in notebook.metric_keys(r)) == points
    write_run(logs / "c", lr=1.0)  # a new run folder beside them is imported, the old ones are not again
    third = import_logdir(notebook, logs)
    assert [f.name for _, f in third.made] == ["c"] and len(notebook.list_runs()) == 3


def test_a_truncated_or_corrupt_event_file_is_read_as_far_as_it_goes_and_the_rest_is_named(notebook, tmp_path):
    write_run(tmp_path / "whole", lr=0.1, steps=40)
    (event_file,) = (tmp_path / "whole").glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    truncated, corrupt = tmp_path / "logs" / "truncated", tmp_path / "logs" / "corrupt"
    for folder in (truncated, corrupt):
        folder.mkdir(parents=True)
    (truncated / event_file.name).write_bytes(data[:len(data) // 2])
    damaged = bytearray(data)
    damaged[len(data) // 2:len(data) // 2 + 8] = b"\xff" * 8  # mid-record: that record's checksum fails
    (corrupt / event_file.name).write_bytes(bytes(damaged))
    result = import_logdir(notebook, tmp_path / "logs")
    assert len(result.made) == 2 and len(result.unreadable) == 2
    for run_id, folder in result.made:
        run = notebook.get_run(run_id)
        steps = notebook.metric_history(run_id, "loss/train")[0].tolist()
        assert run.status == "completed" and 5 < len(steps) < 40 and steps == list(range(len(steps)))
        (named,) = [p for p in result.unreadable if str(folder) in p]
        assert f"of {len(data) if folder == corrupt else len(data) // 2}" in named and "unreadable" in named
        assert "unreadable" in run.status_reason  # the run says what was left out too


def test_a_live_tail_reads_a_record_written_in_two_halves_once_it_is_whole(tmp_path):
    write_run(tmp_path / "source", lr=0.1, steps=3)
    (event_file,) = (tmp_path / "source").glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    (tmp_path / "live").mkdir()
    growing = tmp_path / "live" / event_file.name
    growing.write_bytes(data[:len(data) - 10])  # the writer is halfway through its last record
    tail = LogdirTail(tmp_path / "live")
    before = tail.poll()
    with open(growing, "ab") as out:
        out.write(data[len(data) - 10:])
    after = tail.poll()
    # the root folder's file: loss/train at 3 steps, one image, one text; nothing twice, nothing lost
    assert (len(before.scalars) + len(after.scalars), len(before.images) + len(after.images),
            len(before.texts) + len(after.texts)) == (3, 1, 1)
    assert after and not tail.unreadable()


def test_the_cli_imports_and_says_what_it_skipped(tmp_path):
    write_run(tmp_path / "logs" / "only", lr=0.1, steps=2)
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    command = [sys.executable, "-m", "engine", "import-tensorboard", str(tmp_path / "logs"), "--db", url]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "run 1: imported" in first.stdout, first.stderr
    assert second.returncode == 0 and "run 1: " in second.stdout and "skipped" in second.stdout
    missing = subprocess.run([*command[:4], str(tmp_path / "nope"), "--db", url], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "LOGDIR" in missing.stderr and "is not a folder" in missing.stderr
    shutil.rmtree(tmp_path / "logs")


def test_an_interrupted_import_ends_its_run_and_the_next_import_redoes_the_folder(notebook, tmp_path, monkeypatch):
    """Ctrl-C in the middle of writing a folder's points: its run is stopped, not left running, and not counted as
    imported (it used to be skipped ever after, with part of its points)."""
    from engine import tensorboard_feed

    logs = tmp_path / "logs"
    expected = write_run(logs / "a", lr=0.1)
    real_write = tensorboard_feed.write_batch

    def interrupted(notebook_, attempt, batch, report=print):
        real_write(notebook_, attempt, batch, report)
        raise KeyboardInterrupt  # after the first chunk

    monkeypatch.setattr(tensorboard_feed, "write_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_logdir(notebook, logs)
    (broken,) = notebook.list_runs()
    assert broken.status == "stopped" and "the import did not finish" in broken.status_reason
    monkeypatch.setattr(tensorboard_feed, "write_batch", real_write)
    again = import_logdir(notebook, logs)
    (run_id, folder), = again.made
    assert folder.name == "a" and not again.skipped and notebook.get_run(run_id).status == "completed"
    assert metrics_of(notebook, run_id) == expected


def test_points_at_steps_the_notebook_cannot_store_are_skipped_and_said(notebook, tmp_path, capsys):
    """A step past 32 bits (samples seen, say) fails PostgreSQL's INTEGER column, and with it every point buffered
    beside it: it is left out and said, and the rest imported."""
    with SummaryWriter(str(tmp_path / "logs" / "a")) as writer:
        writer.add_scalar("loss", 0.5, 10)
        writer.add_scalar("loss", 0.25, 2**31)
        writer.add_scalar("t" * 201, 1.0, 10)  # over the key column's 200 characters: PostgreSQL refuses it
        writer.add_scalar("loss", 0.125, 20)
    (run_id, _), = import_logdir(notebook, tmp_path / "logs").made
    assert metrics_of(notebook, run_id) == {"loss": {10: 0.5, 20: 0.125}}
    assert notebook.get_run(run_id).status == "completed"
    assert "2 points, images or texts skipped: at steps outside -2,147,483,648..2,147,483,647" in \
        capsys.readouterr().out


def test_an_import_interrupted_as_it_finishes_is_not_left_running(notebook, tmp_path, monkeypatch):
    write_run(tmp_path / "logs" / "a", lr=0.1)
    real_finish = notebook.finish_attempt

    def interrupted_at_completion(attempt, status, reason=None):
        if status == "completed":
            raise KeyboardInterrupt
        return real_finish(attempt, status, reason=reason)

    monkeypatch.setattr(notebook, "finish_attempt", interrupted_at_completion)
    with pytest.raises(KeyboardInterrupt):
        import_logdir(notebook, tmp_path / "logs")
    assert [run.status for run in notebook.list_runs()] == ["stopped"]


def test_a_folder_an_import_is_making_now_is_not_imported_twice(notebook, tmp_path):
    from engine.tensorboard_feed import IMPORT_PRESET
    from lab_notes.imported_runs import start_imported_run

    write_run(tmp_path / "logs" / "a", lr=0.1)
    source = str((tmp_path / "logs" / "a").resolve())
    making = start_imported_run(notebook, {"kind": IMPORT_PRESET, "source": source}, name="a", preset=IMPORT_PRESET)
    result = import_logdir(notebook, tmp_path / "logs")  # another process's import, heartbeating: left to it
    assert not result.made and result.skipped == [(making.run_id, Path(source))]


def test_a_live_feed_reads_only_the_event_files_its_run_writes(notebook, tmp_path, capsys):
    """A logdir shared between launches (`--tensorboard runs`, where SummaryWriter() writes by default) already
    holds earlier runs' event files: they are not this run's, and their curves must not show as its own."""
    from engine.tensorboard_feed import TensorBoardFeed
    from lab_notes.imported_runs import start_imported_run

    logdir = tmp_path / "runs"
    write_run(logdir / "earlier", lr=5.0)
    attempt = start_imported_run(notebook, {"kind": "script"}, name="live", preset=None)
    feed = TensorBoardFeed(notebook, attempt, logdir)  # made before the script starts, as the launcher does
    assert "4 event file(s) already in" in capsys.readouterr().out  # add_scalars and add_hparams make 3 more
    expected = write_run(logdir / "this", lr=0.1)
    assert feed.poll() > 0
    notebook.flush()
    stored = metrics_of(notebook, attempt.run_id)
    assert not [key for key in stored if "earlier" in key] and len(stored) == len(expected)
    assert stored["this/loss/train"] == expected["loss/train"]  # lr 0.1's curve, not lr 5.0's
