"""Sweeps: a grid or list over up to three fields, each run validated, queued together with one sweep id."""

import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import ConfigError
from engine.presets import PRESETS
from engine.sweeps import expand, parse_field
from lab_notes import Notebook

ROOT = Path(__file__).resolve().parents[2]


def test_a_grid_is_every_combination_and_a_list_takes_values_together():
    base = PRESETS["tiny"]
    grid = expand(base, {"optim.lr": [0.001, 0.01], "loss.temperature": [0.1, 0.5]}, "grid")
    assert [(p.config.optim.lr, p.config.loss.temperature) for p in grid] == [
        (0.001, 0.1), (0.001, 0.5), (0.01, 0.1), (0.01, 0.5)]
    assert grid[1].label == "lr=0.001, temperature=0.5"
    paired = expand(base, {"optim.lr": [0.001, 0.01], "optim.optimizer": ["adam", "sgd"]}, "list")
    assert [(p.config.optim.lr, p.config.optim.optimizer) for p in paired] == [(0.001, "adam"), (0.01, "sgd")]
    assert parse_field("model.encoder.pos_embed=sincos, learnable") == ("model.encoder.pos_embed",
                                                                         ["sincos", "learnable"])


@pytest.mark.parametrize("fields, mode, words", [
    ({"optim.lr": [-1.0, 0.01]}, "grid", "optim.lr"),
    ({"a.b": [1], "c.d": [1], "e.f": [1], "g.h": [1]}, "grid", "at most 3 fields"),
    ({"optim.lr": [0.1, 0.2], "loss.temperature": [0.1]}, "list", "same number of values"),
    ({"optim.lr": [0.001 * i for i in range(1, 10)], "loss.temperature": [0.1 * i for i in range(1, 9)]}, "grid",
     "72 runs is more than 64"),
])
def test_an_impossible_sweep_names_the_field_before_anything_is_queued(fields, mode, words):
    with pytest.raises(ConfigError, match=words):
        expand(PRESETS["tiny"], fields, mode)


def test_a_two_by_two_sweep_from_the_cli_queues_four_siblings(tmp_path):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    done = subprocess.run([sys.executable, "-m", "engine", "sweep", "--preset", "tiny", "--db", url,
                           "--grid", "optim.lr=1e-3,1e-2", "--grid", "loss.temperature=0.1,0.5", "--name", "lr x tau"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with Notebook(url) as notebook:
        (sweep,) = notebook.list_sweeps()
        assert done.stdout.strip() == f"sweep {sweep.id}: runs {' '.join(map(str, sweep.run_ids))}"
        runs = [notebook.get_run(i) for i in sweep.run_ids]
        assert {r.sweep_id for r in runs} == {sweep.id} and {r.status for r in runs} == {"queued"}
        assert sorted((r.config["optim"]["lr"], r.config["loss"]["temperature"]) for r in runs) == [
            (0.001, 0.1), (0.001, 0.5), (0.01, 0.1), (0.01, 0.5)]
        assert runs[0].name == "lr x tau [lr=0.001, temperature=0.1]" and sweep.mode == "grid"
    bad = subprocess.run([sys.executable, "-m", "engine", "sweep", "--preset", "tiny", "--db", url,
                          "--grid", "optim.lr=-1,1e-2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "optim.lr" in bad.stderr and "Traceback" not in bad.stderr
