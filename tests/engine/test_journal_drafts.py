"""A run's journal draft: what it says (tried, happened, against what came before), its figures, its language, and
the faults it survives. Runs are made by hand in the notebook (no training), on SQLite and on PostgreSQL."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.journal_drafts import catch_up, write_run_draft, write_sweep_draft
from engine.journal_drafts.compose import interval
from engine.journal_drafts.phrases import EN, ZH
from engine.presets import PRESETS
from lab_notes import DRAFT_TAG, Notebook, Refused, run_ending_key
from tests.helpers import claimed
from tests.lab_notes.conftest import notebook, notebook_url  # noqa: F401 - the fixtures, on both databases
from tests.lab_notes.test_store import png

TINY = PRESETS["tiny"].model_dump(mode="json")
JUDGES = ("prototype", "discriminator", "knn", "linear_probe")


def report(mean: float, ci: float = 0.02, seen: float | None = 0.5) -> dict:
    accuracy = {j: {"mean": mean + 0.01 * i, "ci95": ci} for i, j in enumerate(JUDGES)}
    return {"step": 5, "n_way": 5, "k_shot": 4, "episodes": 40, "judged_on": "held-out classes",
            "accuracy": accuracy,
            "seen_classes": None if seen is None else {j: {"mean": seen, "ci95": 0.03} for j in JUDGES}}


def features() -> dict:
    rng = np.random.default_rng(0)
    return {"points": rng.normal(size=(20, 2)).tolist(), "labels": [i % 4 for i in range(20)],
            "class_names": ["a", "b", "c", "d"], "normalized": True, "dim": 2}


def ended_run(book: Notebook, *, config: dict | None = None, preset: str | None = "tiny", parent: int | None = None,
              status: str = "completed", steps: int = 5, few_shot: dict | None = None, pictures: bool = True,
              divergence: dict | None = None, reason: str | None = None, output: str = "") -> int:
    """A run as a worker would leave it: metrics each step, a reconstruction and feature map at the end, the
    few-shot report when given, then its ending."""
    run_id = book.create_run(config or TINY, name="run", preset=preset, parent_id=parent, owner="ada@lab")
    attempt = claimed(book, run_id)
    book.set_device(attempt, "cpu (fp32)")
    for step in range(1, steps + 1):
        book.log_metrics(run_id, step, {"loss/total": 3.0 / step, "loss/contrastive": 2.0 / step,
                                        "acc/prototype_masked": 0.2 + step / 100, "images_per_s": 100.0 + step},
                         attempt=attempt)
    if steps:
        book.log_metrics(run_id, steps, {"eval/acc/prototype": 0.3}, attempt=attempt)
    if pictures and steps:
        book.log_image(run_id, "reconstruction", steps, png(7), attempt=attempt)
        book.log_snapshot(run_id, "features", steps, features(), attempt=attempt)
    if few_shot is not None:
        book.log_snapshot(run_id, "few_shot", steps, few_shot, attempt=attempt)
    if output:
        book.append_log(run_id, output)
    book.finish_attempt(attempt, status, reason=reason, report=divergence)
    return run_id


def is_png(data: bytes) -> bool:
    return Image.open(io.BytesIO(data)).format == "PNG"


def test_a_completed_run_gets_its_entry_in_the_journal_shape_with_real_figures(notebook):
    run_id = ended_run(notebook, few_shot=report(0.6))
    written = write_run_draft(notebook, run_id, language="en")
    note = notebook.get_note(written.note_id)
    assert note.title == f"tiny — run {run_id}" and note.tags == [DRAFT_TAG] and note.run_ids == [run_id]
    assert note.owner == "ada@lab" and note.entry_date == notebook.get_run(run_id).ended_at.astimezone().date()
    body = note.body
    for heading in ("## What was tried", "## What happened", "## Against what came before"):
        assert heading in body
    assert "Preset: `tiny`" in body and "Nothing changed: the same config." in body
    assert "| completed |" in body and "| 5 | `cpu (fp32)` | 103.0 |" in body  # steps, device, median images/s
    assert "- `loss/total` = 0.6" in body and "- `loss/contrastive` = 0.4" in body
    stored = notebook.latest_snapshots([run_id], "few_shot")[run_id]
    for judge, name in (("prototype", "nearest prototype"), ("linear_probe", "linear probe")):
        assert (f"| {name} | {interval(stored['accuracy'][judge])} | {interval(stored['seen_classes'][judge])} |"
                in body)
    assert "no parent and no earlier finished run" in body
    assert [f.name for f in note.figures] == [f"run-{run_id}-{n}.png" for n in
                                              ("losses", "accuracy", "reconstruction", "features")]
    assert all(is_png(f.image) for f in note.figures) and note.figures[2].image == png(7)
    assert notebook.ending_written(run_ending_key(run_id, 1))


def test_what_changed_from_the_parent_in_the_forms_words_and_a_verdict_per_judge(notebook):
    parent = ended_run(notebook, few_shot=report(0.40))
    config = {**TINY, "optim": {**TINY["optim"], "lr": 0.01}, "data": {**TINY["data"], "k_shot": 5}}
    child = ended_run(notebook, config=config, parent=parent, few_shot=report(0.60))
    body = write_run_draft(notebook, child, language="en").body
    assert f"Changed from the parent, [run {parent}](/run?run={parent}):" in body
    assert "- Learning rate: `0.001` → `0.01` (`optim.lr`)" in body
    assert "- Support images per class (K): `4` → `5` (`data.k_shot`)" in body
    assert f"Its parent, [run {parent}](/run?run={parent}) (completed):" in body
    assert "| nearest prototype | 0.600 ± 0.020 | 0.400 ± 0.020 | higher |" in body
    lower = ended_run(notebook, parent=parent, few_shot=report(0.2))
    assert "| nearest prototype | 0.200 ± 0.020 | 0.400 ± 0.020 | lower |" in write_run_draft(notebook, lower).body
    close = ended_run(notebook, parent=parent, few_shot=report(0.43))
    assert "| 0.430 ± 0.020 | 0.400 ± 0.020 | within the intervals |" in write_run_draft(notebook, close).body


def test_without_a_parent_it_compares_with_the_latest_earlier_finished_run_of_the_preset(notebook):
    ended_run(notebook, few_shot=report(0.3))
    latest = ended_run(notebook, few_shot=report(0.5))
    ended_run(notebook, few_shot=report(0.9), status="failed")  # not finished: not compared with
    other_preset = ended_run(notebook, preset=None, few_shot=report(0.1))
    run_id = ended_run(notebook, few_shot=report(0.51))
    body = write_run_draft(notebook, run_id, language="en").body
    assert f"The latest earlier finished run of this preset, [run {latest}](/run?run={latest}):" in body
    assert "| nearest prototype | 0.510 ± 0.020 | 0.500 ± 0.020 | within the intervals |" in body
    assert "No preset" in write_run_draft(notebook, other_preset).body


def test_a_diverged_run_says_the_step_the_mechanism_and_the_policy_in_its_one_entry(notebook):
    incident = {"step": 4, "stage": "loss", "action": "stop", "last_finite_step": 3,
                "diagnostics": {"largest_logit": 812.5, "overflow": {"explanation": "exp(812) overflowed"}}}
    divergence = {"policy": "stop", "first_step": 4, "reason": "loss/total is nan", "incidents": [incident]}
    run_id = ended_run(notebook, status="diverged", steps=4, divergence=divergence)
    write_run_draft(notebook, run_id, language="en")
    (note,) = notebook.list_notes(run_id=run_id)  # one entry per run: no separate divergence note
    assert "Diverged at step 4: **loss/total is nan** (loss check). The guard's policy: `stop`" in note.body
    assert "What the guard measured: exp(812) overflowed" in note.body and '"largest_logit": 812.5' in note.body


def test_a_failed_run_says_why_and_its_last_lines(notebook):
    output = "".join(f"line {i}\n" for i in range(40)) + "Traceback: ``` boom\n"
    run_id = ended_run(notebook, status="failed", reason="process exited with code 1", output=output)
    body = write_run_draft(notebook, run_id, language="en").body
    assert "Failed: process exited with code 1" in body and "The last lines of its output:" in body
    assert "line 39\nTraceback: ``` boom\n````" in body and "line 20\n" not in body  # the last 20, fenced safely
    assert "the run ended before its final evaluation" in body


def test_a_run_with_no_metrics_at_all_still_gets_its_entry_saying_so(notebook):
    run_id = ended_run(notebook, status="failed", steps=0, reason="could not start")
    written = write_run_draft(notebook, run_id, language="en")
    note = notebook.get_note(written.note_id)
    assert "The run logged no metrics at all." in note.body and note.figures == []
    assert "Figure “Loss curves” could not be drawn: the run logged no loss values" in note.body
    assert "Figure “Accuracy curves” could not be drawn: the run logged no accuracy values" in note.body


def test_a_run_whose_evaluation_failed_says_there_is_no_report(notebook):
    run_id = ended_run(notebook, few_shot=None)
    body = write_run_draft(notebook, run_id, language="en").body
    assert "No few-shot evaluation report: the run wrote none (its evaluation failed" in body


def test_a_figure_that_fails_to_render_is_named_with_why_and_the_entry_is_written(notebook):
    run_id = ended_run(notebook, few_shot=report(0.5))

    def draw(name, make):
        if name.endswith("-features.png"):
            raise MemoryError("no room for the scatter")
        return make()

    written = write_run_draft(notebook, run_id, language="en", draw=draw)
    note = notebook.get_note(written.note_id)
    assert [f.name.rsplit("-", 1)[1] for f in note.figures] == ["losses.png", "accuracy.png", "reconstruction.png"]
    assert "Figure “Held-out feature space at step 5” could not be drawn: MemoryError: no room for the scatter" \
        in note.body


def test_stopped_before_its_first_step_gets_no_draft_after_a_step_it_does(notebook):
    never = ended_run(notebook, status="stopped", steps=0)
    assert write_run_draft(notebook, never) is None and notebook.list_notes() == []
    assert notebook.endings_without_draft() == []  # its ending is recorded: not tried again
    stopped = ended_run(notebook, status="stopped", steps=2)
    assert "Stopped by request at step 2." in write_run_draft(notebook, stopped, language="en").body


def test_no_draft_for_a_run_that_has_not_ended(notebook):
    run_id = notebook.create_run(TINY, name="queued", preset="tiny")
    with pytest.raises(Refused, match="has ended"):
        write_run_draft(notebook, run_id)


def test_a_run_deleted_after_its_draft_keeps_the_entry(notebook):
    run_id = ended_run(notebook, few_shot=report(0.5))
    note_id = write_run_draft(notebook, run_id).note_id
    notebook.delete_run(run_id)
    note = notebook.get_note(note_id)
    assert note.run_ids == [run_id] and len(note.figures) == 4 and notebook.draft_of(note_id).run_deleted


def test_a_resumed_run_rewrites_its_draft_unless_a_person_edited_it(notebook):
    run_id = ended_run(notebook, status="stopped", steps=2)
    first = catch_up(notebook)[0].note_id
    notebook.resume(run_id, 2)
    attempt = claimed(notebook, run_id)
    notebook.log_metrics(run_id, 3, {"loss/total": 0.25}, attempt=attempt)
    notebook.finish_attempt(attempt, "stopped")
    (again,) = catch_up(notebook)
    assert again.note_id == first and "Stopped by request at step 3." in notebook.get_note(first).body
    notebook.update_note(first, body_markdown="my words")
    notebook.resume(run_id, 3)
    notebook.finish_attempt(claimed(notebook, run_id), "failed", reason="again")
    (third,) = catch_up(notebook)
    assert third.note_id != first and notebook.get_note(first).body == "my words"
    assert len(notebook.list_notes(run_id=run_id)) == 2 and catch_up(notebook) == []


def test_chinese_entries_take_every_phrase_from_their_table_and_the_same_numbers(notebook, monkeypatch):
    assert set(EN) == set(ZH) and set(EN["status_words"]) == set(ZH["status_words"])
    run_id = ended_run(notebook, few_shot=report(0.6))
    monkeypatch.setenv("LAB_JOURNAL_LANGUAGE", "zh")
    zh = write_run_draft(notebook, run_id)
    monkeypatch.setenv("LAB_JOURNAL_LANGUAGE", "en")
    other = ended_run(notebook, few_shot=report(0.6))
    en = write_run_draft(notebook, other)
    assert zh.title == f"tiny — 运行 {run_id}" and "## 尝试了什么" in zh.body and "| 已完成 |" in zh.body
    assert notebook.draft_of(zh.note_id).language == "zh"
    assert "What" not in zh.body and "| nearest prototype | 0.600 ± 0.020 | 0.500 ± 0.030 |" in zh.body
    numbers = [line.split("|", 2)[2] for line in en.body.splitlines() if line.startswith("| nearest prototype")]
    assert numbers[0] in zh.body  # the same numbers, formatted the same way
    captions = [f.caption for f in notebook.get_note(zh.note_id).figures]
    assert captions[:2] == [ZH["loss_curves"], ZH["accuracy_curves"]]


def test_a_sweep_entry_waits_for_its_last_run_then_tables_links_and_pictures_them(notebook):
    runs = [(f"lr={lr}", {**TINY, "optim": {**TINY["optim"], "lr": lr}}, []) for lr in (0.001, 0.01, 0.1)]
    sweep_id = notebook.create_sweep(name="lr sweep", preset="tiny", mode="list", fields={"optim.lr": [0.001, 0.01,
                                                                                                     0.1]}, runs=runs)
    run_ids = notebook.get_sweep(sweep_id).run_ids
    for run_id, mean in zip(run_ids[:2], (0.4, 0.7)):
        attempt = claimed(notebook, run_id)
        notebook.log_metrics(run_id, 1, {"loss/total": 1.0, "eval/acc/prototype": mean}, attempt=attempt)
        notebook.log_snapshot(run_id, "few_shot", 1, report(mean), attempt=attempt)
        notebook.finish_attempt(attempt, "completed")
    assert write_sweep_draft(notebook, sweep_id) is None  # run 3 still queued: no entry
    assert all(n.title != "Sweep" for n in catch_up(notebook)) and not notebook.list_notes(run_id=run_ids[2])
    assert notebook.request_stop(run_ids[2]) == "stopped"  # the sweep is stopped: its entry is written
    written = catch_up(notebook)
    (entry,) = [w for w in written if w.title.startswith("Sweep")]
    note = notebook.get_note(entry.note_id)
    assert note.title == f"Sweep {sweep_id}: lr sweep" and note.run_ids == run_ids
    assert "Learning rate (`optim.lr`): `0.001`, `0.01`, `0.1`" in note.body
    assert f"| [run {run_ids[1]}](/run?run={run_ids[1]}) | completed | `0.01` | 0.700 ± 0.020 |" in note.body
    assert f"Best by `eval/acc/prototype`: [run {run_ids[1]}]" in note.body
    assert all(f"[run {r}](/run?run={r})" in note.body for r in run_ids)
    assert note.figures[0].name == f"sweep-{sweep_id}-parallel.png" and is_png(note.figures[0].image)
    assert any(f.caption.startswith(f"Best run {run_ids[1]}: Loss curves") for f in note.figures)
    assert catch_up(notebook) == []  # idempotent


def test_a_draft_that_keeps_failing_is_left_alone_and_the_others_are_written(notebook, monkeypatch):
    import engine.journal_drafts.writer as writer

    broken = ended_run(notebook)
    fine = ended_run(notebook)
    real = writer.write_run_draft

    def flaky(book, run_id, **kw):
        if run_id == broken:
            raise KeyError("a bug")
        return real(book, run_id, **kw)

    monkeypatch.setattr(writer, "write_run_draft", flaky)
    failures: dict[str, int] = {}
    assert [w.title for w in catch_up(notebook, failures=failures)] == [f"tiny — run {fine}"]
    for _ in range(3):
        catch_up(notebook, failures=failures)
    assert failures == {run_ending_key(broken, 1): writer.TRIES_PER_ENDING}


def test_a_drafter_started_after_a_crash_writes_the_drafts_of_runs_that_ended_without_one(notebook):
    from engine.journal_drafts.drafter import Drafter
    from tests.helpers import wait_for

    ended_before = [ended_run(notebook, few_shot=report(0.5)) for _ in range(2)]  # no drafter ran: "a crash"
    said: list[str] = []
    drafter = Drafter(notebook.url, every=0.2, report=said.append).start()
    try:
        wait_for(lambda: all(notebook.list_notes(run_id=r) for r in ended_before), 120, "the catch-up drafts")
        later = ended_run(notebook)
        drafter.poke()
        wait_for(lambda: notebook.list_notes(run_id=later), 120, "the draft of a run that ends while it runs")
    finally:
        drafter.stop()
    assert drafter.written == 3 and len(notebook.waiting_drafts()) == 3 and len(said) == 3


def test_drafting_can_be_turned_off_and_its_endings_wait_for_a_drafter(notebook, monkeypatch):
    from engine.journal_drafts.drafter import Drafter

    monkeypatch.setenv("LAB_JOURNAL_DRAFTS", "off")
    run_id = ended_run(notebook)
    Drafter(notebook.url, every=0.1).start().stop()
    assert notebook.list_notes() == [] and [e.run_id for e in notebook.endings_without_draft()] == [run_id]
