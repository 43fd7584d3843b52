"""A journal import is capped in entries (refused whole past the cap, nothing written) and the Journal page pages
through notes 50 at a time, whatever was imported."""

from __future__ import annotations

import datetime as dt

import pytest

from lab_notes import JournalError
from tests.app.conftest import notebook, page  # noqa: F401 - the AppTest notebook fixture and page driver


def journal_of(entries: int) -> bytes:
    first = dt.date(2000, 1, 1)
    return "".join(f"### {first + dt.timedelta(days=i):%Y.%m.%d}\nentry {i}\n" for i in range(entries)).encode()


def test_an_80000_entry_journal_is_refused_whole_and_nothing_is_written(notebook):
    notebook.add_note(dt.date(2020, 1, 1), "kept", "existing note")
    text = journal_of(80_000)
    assert len(text) > 1_300_000  # the 1.36 MB file
    before = len(notebook.list_notes())
    with pytest.raises(JournalError, match=r"80,000 dated entries, over the cap of 5,000 entries one import may "
                                           r"hold \(LAB_JOURNAL_IMPORT_MAX_ENTRIES\): nothing imported"):
        notebook.import_journal_upload(text, source="big.md")
    assert len(notebook.list_notes()) == before == 1


def test_the_cap_comes_from_the_environment_and_a_bad_value_is_named(notebook, monkeypatch):
    monkeypatch.setenv("LAB_JOURNAL_IMPORT_MAX_ENTRIES", "3")
    with pytest.raises(JournalError, match="4 dated entries, over the cap of 3"):
        notebook.import_journal_upload(journal_of(4))
    assert notebook.list_notes() == []
    assert len(notebook.import_journal_upload(journal_of(3))) == 3
    monkeypatch.setenv("LAB_JOURNAL_IMPORT_MAX_ENTRIES", "many")
    with pytest.raises(JournalError, match="LAB_JOURNAL_IMPORT_MAX_ENTRIES='many' is not a positive whole number"):
        notebook.import_journal_upload(journal_of(1))
    assert len(notebook.list_notes()) == 3


def test_list_notes_pages_in_its_order(notebook):
    notebook.import_journal_upload(journal_of(120))
    everything = notebook.list_notes(newest_first=True)
    pages = [notebook.notes_page(newest_first=True, limit=50, offset=o) for o in (0, 50, 100)]
    assert [len(p.notes) for p in pages] == [50, 50, 20] and {p.total for p in pages} == {120}
    assert [n.id for p in pages for n in p.notes] == [n.id for n in everything]


def headings(app) -> list[str]:
    return [m.value for m in app.markdown if m.value.startswith("### ")]


def test_a_5000_entry_journal_is_paged_on_the_journal_page(notebook):  # noqa: F811 - the imported fixture
    assert len(notebook.import_journal_upload(journal_of(5000))) == 5000
    app = page("journal")
    first = headings(app)
    assert len(first) == 50 and first[0] == f"### {dt.date(2000, 1, 1) + dt.timedelta(days=4999):%Y.%m.%d}"
    pager = app.number_input(key="journal_page")
    assert pager.max == 100 and "5,000 notes" in pager.label
    pager.set_value(2).run()
    second = headings(app)
    assert len(second) == 50 and not set(second) & set(first)
    assert second[0] == f"### {dt.date(2000, 1, 1) + dt.timedelta(days=4949):%Y.%m.%d}"
    app.number_input(key="journal_page").set_value(100).run()
    assert headings(app)[-1] == "### 2000.01.01"
