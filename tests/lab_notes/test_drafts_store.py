"""Journal drafts in the notebook: an ordinary dated note tagged `draft`, linked to its run and owned by the run's
owner; rewritten in place while nobody has edited it, never once a person has. On SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from lab_notes import (DRAFT_TAG, Figure, NotAllowed, Notebook, NotFound, Person, Refused, run_ending_key,
                       sweep_ending_key)
from tests.helpers import claimed
from tests.lab_notes.test_store import png


def ended(book: Notebook, status: str = "completed", owner: str | None = "ada@lab") -> int:
    run_id = book.create_run({}, name="r", owner=owner)
    book.finish_attempt(claimed(book, run_id), status)
    return run_id


def test_a_draft_is_a_dated_note_tagged_draft_linked_to_its_run_and_owned_by_its_owner(notebook):
    run_id = ended(notebook)
    note_id = notebook.save_draft(run_id=run_id, title="disc + ViT-1 — run 1", body="## What was tried\n",
                                  figures=[Figure("loss.png", png(3), "loss")], language="en")
    note = notebook.get_note(note_id)
    run = notebook.get_run(run_id)
    assert note.tags == [DRAFT_TAG] and note.run_ids == [run_id] and note.owner == "ada@lab"
    assert note.entry_date == run.ended_at.astimezone().date()  # the server's local day of the ending
    assert [f.name for f in note.figures] == ["loss.png"] and note.figures[0].image == png(3)
    draft = notebook.draft_of(note_id)
    assert (draft.run_id, draft.sweep_id, draft.language, draft.edited, draft.waiting, draft.run_deleted) == \
        (run_id, None, "en", False, True, False)
    assert [n.id for n in notebook.waiting_drafts()] == [note_id] and notebook.count_waiting_drafts() == 1
    other = notebook.add_note(dt.date(2026, 1, 1), "by hand", "text", tags=["drafted-by-hand"])
    assert notebook.draft_of(other) is None and notebook.count_waiting_drafts() == 1


def test_regenerating_rewrites_an_unedited_draft_in_place(notebook):
    run_id = ended(notebook)
    first = notebook.save_draft(run_id=run_id, title="t", body="one", figures=[Figure("a.png", png(1))])
    again = notebook.save_draft(run_id=run_id, title="t", body="two", figures=[Figure("b.png", png(2))],
                                language="zh")
    assert again == first
    note = notebook.get_note(first)
    assert note.body == "two" and [f.name for f in note.figures] == ["b.png"]
    assert notebook.draft_of(first).language == "zh" and not notebook.draft_of(first).edited
    assert len(notebook.list_notes(run_id=run_id)) == 1


def test_a_draft_a_person_edited_is_never_overwritten_a_second_one_is_written(notebook):
    run_id = ended(notebook)
    first = notebook.save_draft(run_id=run_id, title="t", body="generated")
    notebook.update_note(first, body_markdown="my own words")
    assert notebook.draft_of(first).edited
    second = notebook.save_draft(run_id=run_id, title="t", body="generated again")
    assert second != first and notebook.get_note(first).body == "my own words"
    assert notebook.save_draft(run_id=run_id, title="t", body="third") == second  # the unedited one is rewritten
    assert notebook.get_note(first).body == "my own words" and notebook.get_note(second).body == "third"


def test_accept_removes_the_tag_keeps_the_text_and_checks_the_owner(notebook):
    run_id = ended(notebook)
    note_id = notebook.save_draft(run_id=run_id, title="t", body="b")
    with pytest.raises(NotAllowed, match="only its owner"):
        notebook.accept_draft(note_id, by=Person("eve@lab"))
    notebook.accept_draft(note_id, by=Person("ada@lab"))
    note = notebook.get_note(note_id)
    assert DRAFT_TAG not in note.tags and note.body == "b"
    assert notebook.waiting_drafts() == [] and not notebook.draft_of(note_id).waiting
    with pytest.raises(Refused, match="not a draft"):
        notebook.accept_draft(note_id)
    # an accepted entry is a person's: regenerating writes a new draft beside it
    assert notebook.save_draft(run_id=run_id, title="t", body="b2") != note_id


def test_discard_deletes_the_note_and_its_ending_stays_written_up(notebook):
    run_id = ended(notebook)
    attempt = notebook.get_run(run_id).attempt
    assert [e.run_id for e in notebook.endings_without_draft()] == [run_id]
    note_id = notebook.save_draft(run_id=run_id, title="t", body="b", ending=run_ending_key(run_id, attempt))
    notebook.delete_note(note_id)
    assert notebook.draft_of(note_id) is None
    assert notebook.ending_written(run_ending_key(run_id, attempt)) and notebook.endings_without_draft() == []


def test_the_same_ending_recorded_twice_rewrites_the_one_draft(notebook):
    run_id = ended(notebook)
    key = run_ending_key(run_id, 1)
    first = notebook.save_draft(run_id=run_id, title="t", body="a", ending=key)
    assert notebook.save_draft(run_id=run_id, title="t", body="b", ending=key) == first
    assert notebook.get_note(first).body == "b"


def test_no_draft_for_a_run_that_has_not_ended_or_does_not_exist(notebook):
    queued = notebook.create_run({}, name="q")
    with pytest.raises(Refused, match="has ended"):
        notebook.save_draft(run_id=queued, title="t", body="b")
    with pytest.raises(NotFound):
        notebook.save_draft(run_id=999, title="t", body="b")
    with pytest.raises(ValueError, match="run_id or sweep_id"):
        notebook.save_draft(title="t", body="b")
    assert notebook.list_notes() == [] and notebook.endings_without_draft() == []


def test_a_run_deleted_after_its_draft_leaves_the_entry_which_says_so(notebook):
    run_id = ended(notebook)
    note_id = notebook.save_draft(run_id=run_id, title="t", body="b")
    notebook.delete_run(run_id)
    note = notebook.get_note(note_id)
    assert note.body == "b" and note.run_ids == [run_id] and notebook.draft_of(note_id).run_deleted


def test_a_resumed_run_that_ends_again_is_an_ending_without_draft(notebook):
    run_id = ended(notebook, "stopped")
    notebook.save_draft(run_id=run_id, title="t", body="b", ending=run_ending_key(run_id, 1))
    assert notebook.endings_without_draft() == []
    notebook.resume(run_id, 0)
    assert notebook.endings_without_draft() == []  # queued again: not ended
    notebook.finish_attempt(claimed(notebook, run_id), "completed")
    assert [(e.run_id, e.attempt, e.status) for e in notebook.endings_without_draft()] == [(run_id, 2, "completed")]
    assert notebook.mark_ending_written(run_ending_key(run_id, 2), run_id=run_id)
    assert not notebook.mark_ending_written(run_ending_key(run_id, 2), run_id=run_id)


def test_a_sweep_entry_waits_for_every_run_and_links_them_all(notebook):
    sweep_id = notebook.create_sweep(name="lr", preset=None, mode="list", fields={"optim.lr": [0.1, 0.2]},
                                     runs=[("a", {}, []), ("b", {}, [])])
    run_ids = notebook.get_sweep(sweep_id).run_ids
    notebook.finish_attempt(claimed(notebook, run_ids[0]), "completed")
    with pytest.raises(Refused, match=f"not ended \\({run_ids[1]}\\)"):
        notebook.save_draft(sweep_id=sweep_id, title="sweep", body="b")
    notebook.finish_attempt(claimed(notebook, run_ids[1]), "failed")
    note_id = notebook.save_draft(sweep_id=sweep_id, title="sweep", body="b", ending=sweep_ending_key(sweep_id, 2))
    note = notebook.get_note(note_id)
    assert note.run_ids == run_ids and notebook.draft_of(note_id).sweep_id == sweep_id


def test_upgrading_counts_runs_that_ended_before_as_written_up(notebook_url):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from lab_notes.store import MIGRATIONS

    engine = create_engine(notebook_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0006")
        connection.exec_driver_sql(
            "INSERT INTO runs (name, config, status, created_at, ended_at, stop_requested, lint, log_tail, attempt) "
            "VALUES ('old run', '{}', 'completed', '2023-01-12 10:00:00', '2023-01-12 11:00:00', false, '[]', '', 1)")
    engine.dispose()
    with Notebook(notebook_url) as book:
        (run,) = book.list_runs()
        assert book.ending_written(run_ending_key(run.id, 1)) and book.endings_without_draft() == []
        assert book.list_notes() == []  # no flood of drafts for old runs


def test_export_then_import_keeps_an_accepted_drafts_text_and_figures(notebook, tmp_path):
    run_id = ended(notebook)
    note_id = notebook.save_draft(run_id=run_id, title="disc + ViT-1 — run 1", body="## What was tried\n\nlr\n",
                                  figures=[Figure("run-1-losses.png", png(5), "Loss curves"),
                                           Figure("run-1-accuracy.png", png(6), "Accuracy curves")])
    notebook.accept_draft(note_id)
    before = notebook.get_note(note_id)
    exported = notebook.export_journal(tmp_path / "out")
    assert (tmp_path / "out" / "pic" / "run-1-losses.png").read_bytes() == png(5)
    notebook.delete_note(note_id)
    (imported,) = [notebook.get_note(i) for i in notebook.import_journal(exported)]
    assert imported.entry_date == before.entry_date and "## What was tried\n\nlr" in imported.body
    assert [(f.name, f.image, f.caption) for f in imported.figures] == \
        [("run-1-losses.png", png(5), "Loss curves"), ("run-1-accuracy.png", png(6), "Accuracy curves")]
