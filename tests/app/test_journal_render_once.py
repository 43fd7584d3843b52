"""The Journal page renders a note once per edit (cached by the note and its last change), not on every view, and
the editor's preview goes through the same renderer and cache, showing at most the first 100 kB (issue #28)."""

from __future__ import annotations

import datetime as dt

import lab_notes
import streamlit as st
from lab_notes import PREVIEW_CHARS
from tests.app.conftest import page


def counting_renders(monkeypatch) -> list[str]:
    """Every body the page hands to the renderer, in order."""
    seen: list[str] = []
    real = lab_notes.body_segments

    def body_segments(body: str) -> list:
        seen.append(body)
        return real(body)

    monkeypatch.setattr(lab_notes, "body_segments", body_segments)
    st.cache_data.clear()
    return seen


def test_a_note_is_rendered_once_per_edit_whatever_the_views(notebook, monkeypatch):
    seen = counting_renders(monkeypatch)
    note_id = notebook.add_note(dt.date(2024, 1, 2), "", "first *words* " + "- item\n" * 3000)
    app = page("journal")
    app.run()
    page("journal")  # another reader
    assert sum(body.startswith("first") for body in seen) == 1
    notebook.update_note(note_id, body_markdown="second *words*")
    page("journal").run()
    assert [body for body in seen if body.startswith(("first", "second"))][1:] == ["second *words*"]
    assert any("second" in m.value or "second" in str(m.proto) for m in page("journal").markdown)


def test_the_preview_renders_the_first_100_kB_through_the_same_cache_and_says_how_much_more(notebook, monkeypatch):
    seen = counting_renders(monkeypatch)
    app = page("journal")
    body = "- a\n" * (PREVIEW_CHARS // 4 + 5000)
    app.text_area(key="new:body").set_value(body).run()
    previews = [b for b in seen if b.startswith("- a")]
    assert previews == [body[:PREVIEW_CHARS]]  # the first 100 kB, rendered once
    app.run()
    assert [b for b in seen if b.startswith("- a")] == previews  # a rerun takes it from the cache
    info = " ".join(i.value for i in app.info)
    assert f"first {PREVIEW_CHARS:,} characters; 20,000 more are not previewed" in info
    shown = " ".join(str(m.proto) for m in app.markdown)
    assert "shown as plain text" in shown  # over the render budget too: the preview says so, and does not hang
