"""Journal drafts in the pages (issue #25): a draft's badge, Accept, Edit, Discard and Regenerate, the drafts
filter, a run deleted after its draft, Home's count of waiting drafts, export with and without drafts (and its
round trip), and the original journal's entries beside their reproductions. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pytest
import streamlit as st

from engine import jobs
from engine.presets import PRESET_INFO, PRESETS
from lab_notes import DRAFT_TAG, Figure, Notebook, Refused
from lab_notes.journal_export import DRAFT_TAG as EXPORTS_DRAFT_TAG
from tests.app.conftest import page, png
from tests.helpers import claimed
from tests.lab_notes.conftest import notebook_url  # noqa: F401 - fixture: SQLite, and PostgreSQL

from app.reproductions import ORIGINAL_LINES, journal_day

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = Path("/work/shared/journal/original-journal.md")
if not ORIGINAL.exists():
    ORIGINAL = ROOT / "tests" / "lab_notes" / "original-journal.md"


@pytest.fixture
def notebook(notebook_url, monkeypatch):  # noqa: F811 - SQLite and PostgreSQL, in place of conftest's
    monkeypatch.setenv("LAB_NOTEBOOK_URL", notebook_url)
    monkeypatch.setenv("LAB_START_WORKER", "0")
    st.cache_resource.clear()  # the app opens the notebook named by this test's environment
    opened = Notebook(notebook_url)
    yield opened
    opened.close()
    st.cache_resource.clear()


def ended_run(notebook: Notebook, preset: str = "2022-12-08-disc-vit1", *, name: str = "ended") -> int:
    """A run of `preset` that logged a few steps and completed."""
    run_id = notebook.create_run(PRESETS[preset].model_dump(mode="json"), name=name, preset=preset)
    attempt = claimed(notebook, run_id)
    for step in range(1, 6):
        notebook.log_metrics(run_id, step, {"loss/total": 2.0 - step * 0.1})
    notebook.flush()
    notebook.finish_attempt(attempt, "completed")
    return run_id


def drafted(notebook: Notebook, run_id: int, *, words: str = "What was tried: the preset as it is.") -> int:
    """The run's draft, written through the core's storage API with two figures."""
    return notebook.save_draft(run_id=run_id, title=f"disc + ViT-1 — run {run_id}", body=f"{words}\n",
                           figures=[Figure("losses.png", png(90), "Loss curves"),
                                    Figure("accuracy.png", png(180), "Accuracy curves")])


def texts(app) -> str:
    return " ".join([m.value for m in app.markdown] + [c.value for c in app.caption])


def image_captions(app) -> list[str]:
    return [i.proto.imgs[0].caption for i in app.get("image")]


def badges(app) -> list[str]:
    return [m.value for m in app.markdown if "orange-badge" in m.value]


def test_the_page_filters_on_the_tag_the_core_writes():
    assert EXPORTS_DRAFT_TAG == DRAFT_TAG == "draft"


def test_a_draft_shows_its_badge_and_figures_and_accept_takes_the_badge_off_keeping_the_text(notebook):
    run_id = ended_run(notebook)
    note_id = drafted(notebook, run_id)
    app = page("journal")
    assert len(badges(app)) == 1 and "Draft" in badges(app)[0]
    assert image_captions(app) == ["Loss curves", "Accuracy curves"]
    assert "What was tried: the preset as it is." in texts(app)
    app.button(key=f"accept:{note_id}").click().run()
    assert not app.exception
    note = notebook.get_note(note_id)
    assert DRAFT_TAG not in note.tags and note.body == "What was tried: the preset as it is.\n"
    assert len(note.figures) == 2
    assert badges(app) == [] and "What was tried" in texts(app)
    assert not [b for b in app.button if b.key == f"accept:{note_id}"]  # an accepted entry has Edit and Delete


def test_discard_asks_first_then_deletes_the_draft_and_keeps_the_run(notebook):
    run_id = ended_run(notebook)
    note_id = drafted(notebook, run_id)
    app = page("journal")
    assert app.button(key=f"discard:{note_id}").label == "Yes, discard this draft"  # inside the confirm
    app.button(key=f"discard:{note_id}").click().run()
    assert not app.exception
    assert notebook.list_notes() == [] and notebook.get_run(run_id).status == "completed"
    assert "The journal is empty" in " ".join(i.value for i in app.info)


def test_edit_opens_the_note_editor_on_the_draft(notebook):
    note_id = drafted(notebook, ended_run(notebook))
    app = page("journal")
    app.button(key=f"edit:{note_id}").click().run()
    assert app.text_area(key=f"edit{note_id}:body").value.startswith("What was tried")
    app.text_area(key=f"edit{note_id}:body").set_value("My own words.").run()
    app.button(key=f"edit{note_id}:save").click().run()
    assert notebook.get_note(note_id).body == "My own words." and notebook.draft_of(note_id).edited


def test_regenerate_rewrites_a_draft_nobody_edited_and_is_refused_with_the_reason_otherwise(notebook):
    run_id = ended_run(notebook)
    note_id = drafted(notebook, run_id)
    app = page("journal")
    again = app.button(key=f"regenerate:{note_id}")
    assert not again.disabled
    again.click().run()
    assert not app.exception and not app.error
    rewritten = notebook.get_note(note_id)  # the same note, now in the composer's words, still a draft
    assert rewritten.body != "What was tried: the preset as it is.\n" and DRAFT_TAG in rewritten.tags
    assert rewritten.title.endswith(f"run {run_id}") and rewritten.figures
    assert [n.id for n in notebook.list_notes(run_id)] == [note_id]
    notebook.update_note(note_id, body_markdown="A person's words.\n")
    app = page("journal")
    again = app.button(key=f"regenerate:{note_id}")
    assert again.disabled and "a person has edited this draft" in again.help
    with pytest.raises(Refused, match="edited by a person"):  # the service refuses too, whoever asks
        jobs.regenerate_draft(notebook, note_id)
    assert notebook.get_note(note_id).body == "A person's words.\n"


def test_a_persons_own_note_tagged_draft_has_no_regenerate(notebook):
    note_id = notebook.add_note(dt.date(2026, 1, 5), "mine", "My words.", tags=[DRAFT_TAG])
    app = page("journal")
    again = app.button(key=f"regenerate:{note_id}")
    assert again.disabled and "not written by the notebook" in again.help
    with pytest.raises(Refused, match="not a run's draft"):
        jobs.regenerate_draft(notebook, note_id)


def test_the_filter_shows_drafts_only_or_hides_them(notebook):
    draft_id = drafted(notebook, ended_run(notebook))
    notebook.add_note(dt.date(2026, 1, 5), "mine", "A person's entry.")
    app = page("journal")
    assert "A person's entry." in texts(app) and "What was tried" in texts(app)
    app.radio(key="journal:drafts").set_value("Drafts only").run()
    assert "What was tried" in texts(app) and "A person's entry." not in texts(app)
    app.radio(key="journal:drafts").set_value("Hide drafts").run()
    assert "What was tried" not in texts(app) and "A person's entry." in texts(app)
    app.text_input(key="journal:search").set_value("tried").run()  # a search under the filter too
    assert "What was tried" not in texts(app)
    app.radio(key="journal:drafts").set_value("Drafts only").run()
    assert "What was tried" in texts(app)
    notebook.accept_draft(draft_id)
    app.run()
    assert "No notes match." in " ".join(i.value for i in app.info)


def test_a_run_deleted_after_its_draft_leaves_the_entry_and_the_link_says_so(notebook):
    run_id = ended_run(notebook)
    note_id = drafted(notebook, run_id)
    notebook.delete_run(run_id)
    app = page("journal")
    assert not app.exception
    assert f"{run_id} (run deleted)" in texts(app) and f"/run?run={run_id}" not in texts(app)
    assert "What was tried" in texts(app)
    again = app.button(key=f"regenerate:{note_id}")
    assert again.disabled and "was deleted" in again.help


def test_home_says_how_many_drafts_wait_and_links_to_them(notebook):
    app = page("home")
    assert any("No journal drafts wait" in c.value for c in app.caption)
    first, second = ended_run(notebook, name="a"), ended_run(notebook, name="b")
    drafted(notebook, first)
    drafted(notebook, second)
    app = page("home")
    (link,) = [p for p in app.get("page_link") if "wait for you" in p.proto.label]
    assert link.proto.label.startswith("2 journal drafts wait")
    journal = page("journal", show="drafts")
    assert journal.radio(key="journal:drafts").value == "Drafts only"


def test_typed_text_in_a_draft_is_never_html(notebook):
    run_id = ended_run(notebook)
    note_id = notebook.save_draft(run_id=run_id, title="t", body="<b onclick=alert(1)>hi</b> **bold**\n",
                              figures=[Figure("x.png", png(10), "<b>caption</b> ![](http://198.51.100.7/a.png)")])
    notebook.update_note(note_id, tags=[DRAFT_TAG, "<i>tag</i>"])
    app = page("journal")
    assert not app.exception
    rendered = " ".join(m.value for m in app.markdown)
    assert "<b onclick" not in rendered and "&lt;b onclick=alert(1)&gt;hi&lt;/b&gt;" in rendered
    assert "`<i>tag</i>`" in texts(app)  # a tag as code: its characters, no HTML
    captions = image_captions(app)
    assert captions and all("\\<b\\>" in c and "\\!\\[\\]" in c for c in captions)


def exported_zip(app) -> zipfile.ZipFile:
    app.button[[b.label for b in app.button].index("Prepare export")].click().run()
    return zipfile.ZipFile(io.BytesIO(app.session_state["export_zip"]))


def test_export_keeps_accepted_entries_and_drafts_only_when_asked_and_imports_back(notebook, tmp_path):
    accepted_run, waiting_run = ended_run(notebook, name="kept"), ended_run(notebook, name="waits")
    accepted = drafted(notebook, accepted_run, words="Accepted words, 准确率 0.61 ± 0.02.")
    drafted(notebook, waiting_run, words="Still a draft.")
    notebook.accept_draft(accepted)
    app = page("journal")
    archive = exported_zip(app)
    journal = archive.read("journal.md").decode()
    assert "Accepted words, 准确率 0.61 ± 0.02." in journal and "Still a draft." not in journal
    pictures = {n for n in archive.namelist() if n.startswith("pic/")}
    assert pictures == {"pic/losses.png", "pic/accuracy.png"}
    assert archive.read("pic/losses.png") == png(90)

    with Notebook(f"sqlite:///{tmp_path / 'imported.db'}") as other:  # export -> import keeps text and figures
        other.import_journal_upload(archive.read("journal.md"), _pictures_zip(archive))
        (entry,) = other.list_notes()
        assert "Accepted words, 准确率 0.61 ± 0.02." in entry.body
        assert {f.name: f.image for f in entry.figures} == {"losses.png": png(90), "accuracy.png": png(180)}
        assert entry.entry_date == notebook.get_note(accepted).entry_date

    app.checkbox(key="export:drafts").check().run()
    journal = exported_zip(app).read("journal.md").decode()
    assert "Accepted words" in journal and "Still a draft." in journal


def _pictures_zip(archive: zipfile.ZipFile) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as pictures:
        for name in archive.namelist():
            if name.startswith("pic/"):
                pictures.writestr(name, archive.read(name))
    return out.getvalue()


# --- the original journal, reproduced -----------------------------------------------------------------------------

def test_every_mirrored_passage_is_in_the_original_under_its_presets_date():
    entries = re.split(r"^### ", ORIGINAL.read_text(encoding="utf-8"), flags=re.MULTILINE)
    by_day = {dt.datetime.strptime(e[:10], "%Y.%m.%d").date(): e for e in entries if e.strip()}
    for preset, line in ORIGINAL_LINES.items():
        assert PRESET_INFO[preset].journal_date, preset
        assert re.search(rf"^{re.escape(line)}", by_day[journal_day(preset)], flags=re.MULTILINE), preset
    journal_presets = {n for n, p in PRESET_INFO.items() if p.journal_date and not n.endswith("-journal-scale")}
    assert journal_presets - set(ORIGINAL_LINES) == {"2023-01-12-mae-two-decoders-different-targets"}  # not the journal's


def test_an_original_entry_shows_its_reproduction_beside_it_never_in_place_of_its_missing_figure(notebook):
    notebook.import_journal(ORIGINAL)
    older = ended_run(notebook, name="older")
    drafted(notebook, older)
    latest = ended_run(notebook, name="latest")
    drafted(notebook, latest)
    ended_on = f"{notebook.get_run(latest).ended_at.astimezone():%Y.%m.%d}"
    app = page("journal")
    assert not app.exception
    captions = [c for c in image_captions(app) if c.startswith("reproduced")]
    assert captions == [f"reproduced by run {latest} on {ended_on} — Loss curves",
                        f"reproduced by run {latest} on {ended_on} — Accuracy curves"]
    assert f"[Run {latest} · latest](/run?run={latest})" in texts(app)
    # the original's four pictures of 2022.12.08 are still placeholders, where they were
    missing = [w.value for w in app.warning if "Missing figure" in w.value]
    assert any("Missing figure **image-20221214211710614.png**" in w for w in missing)
    assert len(missing) == len(re.findall(r"<img src=", ORIGINAL.read_text(encoding="utf-8")))
    # the presets not run yet say so, beside their passages
    assert texts(app).count("Not reproduced yet") == len(ORIGINAL_LINES) - 1


def test_a_persons_own_note_of_a_journal_date_is_not_taken_for_the_original(notebook):
    drafted(notebook, ended_run(notebook))
    notebook.add_note(dt.date(2022, 12, 8), "mine", "Thinking about disc again.\n")
    app = page("journal")
    assert "Reproduction" not in texts(app)
