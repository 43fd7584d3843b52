"""Each of the nine journal presets, trained for real (at the smallest size the preset tests use: this is a 2-core
CPU machine), ends with exactly one draft, written by the worker's drafter; the draft's numbers are the run's
stored evaluation report and metrics, as formatted."""

from __future__ import annotations

import numpy as np
import pytest

from engine.journal_drafts.compose import JUDGE_NAMES, interval
from engine.journal_drafts.drafter import Drafter
from engine.presets import PRESET_INFO
from engine.run_process import run_one
from lab_notes import DRAFT_TAG, Notebook
from tests.helpers import claimed, tiny

JOURNAL_PRESETS = sorted(name for name, info in PRESET_INFO.items()
                         if info.journal_date and not name.endswith("-journal-scale"))


def test_there_are_nine_journal_presets():
    assert len(JOURNAL_PRESETS) == 9


@pytest.mark.slow
def test_every_journal_preset_ends_with_exactly_one_draft_holding_its_stored_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("LAB_JOURNAL_LANGUAGE", "en")
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    book = Notebook(url)
    drafter = Drafter(url, every=0.5, report=lambda _: None).start()
    try:
        runs = {}
        for name in JOURNAL_PRESETS:
            cfg = tiny(PRESET_INFO[name].config, "schedule.episodes=3", "schedule.eval_every=3",
                       "schedule.image_every=3", "schedule.final_eval_episodes=10")
            run_id = book.create_run(cfg.model_dump(mode="json"), name=name, preset=name)
            assert run_one(url, claimed(book, run_id), tmp_path / "runs") == 0
            drafter.poke()
            runs[name] = run_id
    finally:
        drafter.stop()  # writes what is still missing, then stops
    for name, run_id in runs.items():
        run = book.get_run(run_id)
        assert run.status == "completed", (name, run.status_reason)
        (note,) = book.list_notes(run_id=run_id)
        assert note.tags == [DRAFT_TAG] and note.title.endswith(f"— run {run_id}")
        body = note.body
        report = book.latest_snapshots([run_id], "few_shot")[run_id]
        for judge, summary in report["accuracy"].items():
            seen = report["seen_classes"][judge] if report.get("seen_classes") else None
            row = f"| {JUDGE_NAMES[judge]} | {interval(summary)} |" + (f" {interval(seen)} |" if seen else "")
            assert row in body, (name, row)
        latest = book.latest_metrics(run_id)
        for key, (step, value) in latest.items():
            if key.startswith("loss/"):
                assert f"- `{key}` = {value:.4g}" in body, (name, key)
        speeds = book.metric_history(run_id, "images_per_s")[1]
        assert f"| {latest['loss/total'][0]} | `{run.device}` | {np.median(speeds):.1f} |" in body, name
        assert {f.name.rsplit("-", 1)[1] for f in note.figures} >= {"losses.png", "accuracy.png", "features.png"}
        if run.config["model"]["decoders"]["count"]:
            assert any(f.name.endswith("-reconstruction.png") for f in note.figures)
    assert len(book.waiting_drafts()) == len(JOURNAL_PRESETS)
    book.close()
