"""Every result traceable: the code, packages and machine a run ran with; system metrics while it runs; weight and
gradient norms and histograms every K steps."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from engine import train as training
from engine.presets import PRESETS
from engine.monitoring import layer_group
from engine.provenance import code_differs, git_state
from engine.train import train
from tests.engine.test_presets import Recorder
from tests.helpers import tiny

ROOT = Path(__file__).resolve().parents[2]


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout


def test_a_run_trained_in_a_git_checkout_records_its_commit_dirty_flag_and_diff(tmp_path):
    repo = tmp_path / "checkout"
    for room in ("engine", "data", "lab_notes"):
        shutil.copytree(ROOT / room, repo / room, ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the code")
    commit = git(repo, "rev-parse", "HEAD").strip()
    with open(repo / "engine" / "losses.py", "a") as edited:
        edited.write("\n# an uncommitted experiment\n")
    (repo / "analysis.ipynb").write_text("{}")  # untracked: listed, but not code the engine runs
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "engine", "train", "--preset", "tiny", "--set", "schedule.episodes=2",
                           "--set", "schedule.final_eval_episodes=0", "--out", str(tmp_path / "out")],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert recorded["git"]["commit"] == commit and recorded["git"]["branch"] == "main"
    assert recorded["git"]["dirty"] and recorded["git"]["changed"] == ["engine/losses.py"]
    assert recorded["git"]["untracked"] == ["analysis.ipynb"]
    for name, version in recorded["packages"].items():  # what the run process had installed
        assert version == importlib.metadata.version(name)
    diff = (tmp_path / "out" / "provenance.diff").read_text()
    assert "+# an uncommitted experiment" in diff and recorded["git"]["diff_head"] == diff
    assert recorded["command"][1:3] == ["train", "--preset"] and recorded["cwd"] == str(repo)
    assert recorded["hardware"]["cpu_cores_logical"] == os.cpu_count()
    # today's code differs from the run's once the commit moves on
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "the experiment, committed")
    assert "ran commit" in code_differs(recorded["git"], git_state(repo))


def test_a_folder_outside_git_says_so_instead_of_failing(tmp_path):
    state = git_state(tmp_path)
    assert "error" in state and code_differs(state, git_state(ROOT)) is None


def test_untracked_files_alone_leave_the_tree_clean_and_odd_bytes_never_fail(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "code.py").write_bytes("x = 'caf\u00e9'\n".encode("latin-1"))
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "latin-1 code")
    (tmp_path / "notes.txt").write_text("mine")
    clean = git_state(tmp_path, with_diff=True)
    assert not clean["dirty"] and clean["untracked"] == ["notes.txt"] and "diff" not in clean
    (tmp_path / "code.py").write_bytes("x = 'na\u00efve'\n".encode("latin-1"))  # not UTF-8
    dirty = git_state(tmp_path, with_diff=True)
    assert dirty["dirty"] and "+x = 'na" in dirty["diff"]


def test_system_metrics_appear_while_a_run_trains():
    class StopOnceSampled(Recorder):
        def stop_requested(self):
            sampled = any(k.startswith("sys/") for row in self.metrics.values() for k in row)
            return sampled or time.monotonic() > deadline

    deadline = time.monotonic() + 120
    sink = StopOnceSampled()
    cfg = tiny(PRESETS["tiny"], "schedule.episodes=1000000", "runtime.system_metrics_seconds=0.2")
    assert train(cfg, sink).status == "stopped"
    sampled = [row for row in sink.metrics.values() if "sys/util_percent/cpu" in row]
    assert sampled, "no system sample within 120 s"
    sample = sampled[0]
    assert 0 <= sample["sys/util_percent/cpu"] <= 100
    assert 0 < sample["sys/memory_gb/run_process_rss"] < sample["sys/memory_gb/used"]
    assert not any(k.startswith("sys/power_w/") for k in sample)  # no NVIDIA GPU here: nothing, and no error


def test_norms_and_histograms_every_k_steps():
    sink = Recorder()
    train(tiny(PRESETS["tiny"], "schedule.episodes=7", "schedule.histogram_every=3",
               "runtime.system_metrics_seconds=0"), sink)
    with_norms = sorted(s for s, row in sink.metrics.items() if any(k.startswith("weights/") for k in row))
    assert with_norms == [3, 6]
    row = sink.metrics[3]
    assert {"weights/encoder.blocks.0", "grads/encoder.blocks.0", "weights/discriminator.score.0"} <= set(row)
    histograms = [payload for kind, payload in sink.events if kind == "histograms"]
    assert [h["step"] for h in histograms] == [3, 6]
    block = histograms[0]["groups"]["encoder.blocks.0"]
    assert sum(block["weights"]["counts"]) > 1000 and len(block["weights"]["edges"]) == 49
    assert block["grads"]["nonfinite"] == 0


def test_a_histogram_step_reads_the_speed_of_its_training_and_keeps_the_snapshots_own_time(monkeypatch):
    """The histograms are the notebook's work, not training: their time is kept with them and left out of the step's
    images/s (the Runs table reads a run's last step, and the journal's 300-step presets end on a histogram step)."""
    take_histograms, real_clock, skipped = training.weights_and_gradients, time.perf_counter, [0.0]

    def slow_snapshot(model):
        skipped[0] += 0.5  # the engine's clock jumps 0.5 s, far more than a tiny step: a step charged with it reads it
        return take_histograms(model)

    monkeypatch.setattr(training, "weights_and_gradients", slow_snapshot)
    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + skipped[0])
    sink = Recorder()
    cfg = tiny(PRESETS["tiny"], "schedule.episodes=4", "schedule.histogram_every=2", "runtime.system_metrics_seconds=0")
    train(cfg, sink)
    snapshot_seconds = {payload["step"]: payload["seconds"] for kind, payload in sink.events if kind == "histograms"}
    assert sorted(snapshot_seconds) == [2, 4] and min(snapshot_seconds.values()) >= 0.5
    images = cfg.data.n_way * (cfg.data.k_shot + cfg.data.q_queries)
    step_seconds = {step: images / sink.metrics[step]["images_per_s"] for step in (2, 4)}
    assert all(step_seconds[step] < snapshot_seconds[step] for step in (2, 4)), (step_seconds, snapshot_seconds)


def test_layer_groups_stop_at_a_numbered_block():
    assert layer_group("encoder.blocks.3.attn.qkv.weight") == "encoder.blocks.3"
    assert layer_group("decoders.modules_list.0.pred.bias") == "decoders.modules_list.0"
    assert layer_group("encoder.patch_embed.proj.weight") == "encoder.patch_embed"
    assert layer_group("head.project.weight") == "head.project"
