"""Pin a chart or a reconstruction to a note: a small popover any page can put next to a figure."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import dataclasses

import streamlit as st

from app.identity import current_person
from lab_notes import Figure, Notebook, may_change

NEW_NOTE = -1


def pin_popover(notebook: Notebook, *, key: str, run_ids: list[int], default_title: str, caption: str,
                make_figure: Callable[[str], Figure]) -> None:
    """A 📌 popover: choose a note (or a new one dated today), a caption, and pin. `make_figure(caption)` builds
    the figure only when the button is pressed. Only notes the person may edit are offered (a pin changes the
    note), and the figure records who pinned it."""
    me = current_person()
    with st.popover("📌 Pin to a note"):
        headings = [h for h in notebook.note_headings() if may_change(me, h.owner, "pin to it")]
        choices = [NEW_NOTE] + [h.id for h in headings]
        labels = {h.id: f"{h.entry_date or 'undated'} · {h.title or h.start.strip()[:40] or 'note ' + str(h.id)}"
                  for h in headings}
        target = st.selectbox("Note", choices, key=f"{key}:note",
                              format_func=lambda i: "➕ New note, dated today" if i == NEW_NOTE else labels[i])
        text = st.text_input("Caption", value=caption, key=f"{key}:caption")
        if st.button("Pin", key=f"{key}:pin", type="primary"):
            figure = dataclasses.replace(make_figure(text), owner=me.name)
            if target == NEW_NOTE:
                note_id = notebook.add_note(dt.date.today(), default_title, "", run_ids=run_ids, figures=[figure],
                                        owner=me.name)
            else:
                note = notebook.get_note(target)
                notebook.update_note(target, figures=[*note.figures, figure],
                                 run_ids=sorted(set(note.run_ids) | set(run_ids)), by=me)
                note_id = target
            st.success(f"Pinned to note {note_id}.")
            st.page_link("app_pages/journal.py", label="Open the journal", icon="📓")
