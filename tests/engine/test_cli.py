import json
import subprocess
import sys
from pathlib import Path

from engine.presets import PRESETS

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_presets_lists_every_preset_with_its_journal_date():
    out = run_cli("presets")
    assert out.returncode == 0
    for name in PRESETS:
        assert name in out.stdout
    assert "2022.12.14" in out.stdout and "2023.01.12" in out.stdout


def test_train_writes_metrics_images_checkpoints_and_status(tmp_path):
    out = run_cli("train", "--preset", "tiny", "--set", "schedule.episodes=6", "--set", "schedule.image_every=3",
                  "--set", "data.samples_per_class=16", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "completed" and status["step"] == 6
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) >= 6
    assert len(list((tmp_path / "images" / "reconstruction").glob("*.png"))) == 2
    assert list((tmp_path / "checkpoints").glob("step_*.pt"))
    assert json.loads((tmp_path / "config.json").read_text())["schedule"]["episodes"] == 6
    assert json.loads((tmp_path / "eval.json").read_text())["episodes"] == 40  # the tiny preset's final report
    assert "few-shot on held-out classes (5-way 4-shot, 40 episodes): prototype" in out.stdout


def test_bad_input_gets_a_message_naming_it_not_a_traceback(tmp_path):
    out = run_cli("train", "--preset", "no-such-preset", "--out", str(tmp_path))
    assert out.returncode == 2 and "unknown preset 'no-such-preset'" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("train", "--preset", "tiny", "--set", "optim.lr=-1", "--out", str(tmp_path))
    assert out.returncode == 2 and "optim.lr" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("train", "--preset", "tiny", "--set", "data.dataset=\"folder\"", "--set", "data.path=\"/nope\"",
                  "--out", str(tmp_path))
    assert out.returncode == 2 and "/nope" in out.stderr and "Traceback" not in out.stderr
