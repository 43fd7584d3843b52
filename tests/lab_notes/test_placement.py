"""Where a run may run: a worker claims only runs pinned to its host id or to a kind of GPU it has (or not pinned),
oldest first; and artifact paths recorded relative to the shared root."""

from __future__ import annotations

from pathlib import Path

from lab_notes.artifacts import path_to_record, recorded_path_here
from lab_notes.sweeps import SweepRun

H100 = "NVIDIA H100 80GB HBM3"


def test_a_worker_claims_only_runs_it_may_run_oldest_first(notebook):
    on_b = notebook.create_run({}, name="on b", pinned_host="b")
    on_h100 = notebook.create_run({}, name="on an H100", pinned_gpu="h100")
    anywhere = notebook.create_run({}, name="anywhere")
    on_a_a100 = notebook.create_run({}, name="on a, an A100", pinned_host="a", pinned_gpu="A100")
    underscore = notebook.create_run({}, name="a kind with _", pinned_gpu="H_00")  # a substring, not a pattern

    def claim(host, gpus=()):
        attempt = notebook.claim_next_run(f"worker on {host}", host=host, gpus=gpus)
        return attempt and attempt.run_id

    assert claim("a") == anywhere  # the oldest it may run: not b's, and it has no H100
    assert claim("a") is None  # on_a_a100 needs an A100 too
    assert claim("a", [H100]) == on_h100  # "h100" is in its GPU's name, any case
    assert claim("a", ["NVIDIA A100-SXM4-40GB"]) == on_a_a100
    assert claim("c", [H100]) is None
    assert claim("b") == on_b
    assert notebook.claim_next_run("no host given") is None  # without a host or GPUs: only unpinned runs
    assert notebook.get_run(underscore).status == "queued"
    assert notebook.get_run(on_b).worker_id == "worker on b" and notebook.get_run(on_b).pinned_host == "b"
    # what the run page and `engine status` say of a run that waits for its host or GPU
    assert notebook.get_run(on_a_a100).placement_in_words == "only on host a with GPU kind A100"
    assert notebook.get_run(underscore).placement_in_words == "only on GPU kind H_00"
    assert notebook.get_run(anywhere).placement_in_words == ""


def test_a_sweep_queues_each_run_with_where_it_may_run(notebook):
    sweep = notebook.create_sweep(name="s", preset=None, mode="list", fields={"runtime.host": ["a", "b"]},
                                  runs=[SweepRun("s [a]", {}, pinned_host="a"), SweepRun("s [b]", {}, pinned_host="b"),
                                        ("s [any]", {}, [])])
    runs = [notebook.get_run(i) for i in notebook.get_sweep(sweep).run_ids]
    assert [(r.name, r.pinned_host) for r in runs] == [("s [a]", "a"), ("s [b]", "b"), ("s [any]", None)]
    assert notebook.claim_next_run("w", host="b").run_id == runs[1].id


def test_a_worker_says_where_it_is_and_what_it_offers(notebook):
    notebook.register_worker("a:1:x", host="a", pid=1, max_parallel=2, gpus=[H100, H100], cpu_slots=16)
    (worker,) = notebook.live_workers(60)
    assert (worker.host, worker.gpus, worker.cpu_slots) == ("a", (H100, H100), 16)


def test_artifacts_are_recorded_relative_to_the_shared_root_and_found_under_any_hosts_mount(tmp_path):
    real = tmp_path / "share"
    (real / "7" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hostA").mkdir()
    (tmp_path / "hostA" / "share").symlink_to(real)  # host A mounts the share at one path, host B at another
    (tmp_path / "hostB").mkdir()
    (tmp_path / "hostB" / "mnt").symlink_to(real)
    written_on_a = tmp_path / "hostA" / "share" / "7" / "checkpoints" / "step_000000004.pt"
    written_on_a.write_bytes(b"x")
    recorded = path_to_record(written_on_a, tmp_path / "hostA" / "share")
    assert recorded == "7/checkpoints/step_000000004.pt"
    assert recorded_path_here(recorded, tmp_path / "hostB" / "mnt").read_bytes() == b"x"
    outside = tmp_path / "elsewhere.pt"
    assert path_to_record(outside, real) == str(outside.resolve())  # not under the root: kept absolute
    assert recorded_path_here("/old/notebook/runs/3/checkpoints/step_1.pt", real) == Path(
        "/old/notebook/runs/3/checkpoints/step_1.pt")  # an older notebook's absolute path still means itself


def test_a_backup_manifest_finds_relative_artifacts_under_this_hosts_root(tmp_path, monkeypatch):
    from lab_notes import Notebook
    from lab_notes.backup import backup

    root = tmp_path / "mounted-share"
    (root / "1" / "checkpoints").mkdir(parents=True)
    (root / "1" / "checkpoints" / "step_000000005.pt").write_bytes(b"12345")
    monkeypatch.setenv("LAB_ARTIFACT_ROOT", str(root))
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    with Notebook(url) as notebook:
        run_id = notebook.create_run({}, name="kept")
        notebook.add_checkpoint(run_id, 5, "1/checkpoints/step_000000005.pt")
        notebook.add_checkpoint(run_id, 9, "1/checkpoints/step_000000009.pt")  # not on this host
    made = backup(url, tmp_path / "backup.db")
    assert made.artifacts == 2 and made.missing == 1
