"""Pin a chart or a reconstruction to a note: a small popover any page can put next to a figure."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import streamlit as st

from lab_notes import Figure, Notebook

NEW_NOTE = -1


def pin_popover(book: Notebook, *, key: str, run_ids: list[int], default_title: str, caption: str,
                make_figure: Callable[[str], Figure]) -> None:
    """A 📌 popover: choose a note (or a new one dated today), a caption, and pin. `make_figure(caption)` builds
    the figure only when the button is pressed."""
    with st.popover("📌 Pin to a note"):
        headings = book.note_headings()
        choices = [NEW_NOTE] + [h.id for h in headings]
        labels = {h.id: f"{h.entry_date or 'undated'} · {h.title or h.start.strip()[:40] or 'note ' + str(h.id)}"
                  for h in headings}
        target = st.selectbox("Note", choices, key=f"{key}:note",
                              format_func=lambda i: "➕ New note, dated today" if i == NEW_NOTE else labels[i])
        text = st.text_input("Caption", value=caption, key=f"{key}:caption")
        if st.button("Pin", key=f"{key}:pin", type="primary"):
            figure = make_figure(text)
            if target == NEW_NOTE:
                note_id = book.add_note(dt.date.today(), default_title, "", run_ids=run_ids, figures=[figure])
            else:
                note = book.get_note(target)
                book.update_note(target, figures=[*note.figures, figure],
                                 run_ids=sorted(set(note.run_ids) | set(run_ids)))
                note_id = target
            st.success(f"Pinned to note {note_id}.")
            st.page_link("app_pages/journal.py", label="Open the journal", icon="📓")
