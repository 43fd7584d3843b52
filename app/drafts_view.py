"""Drafts in the Journal page: the entries the notebook wrote itself when a run or sweep ended, marked as drafts
until a person accepts them, with Accept, Discard (after a confirm) and Regenerate; the filter that shows them
only or hides them; and a run link that says when the run was deleted after its entry was written."""

from __future__ import annotations

from typing import Any, Sequence

import streamlit as st

from engine import jobs
from lab_notes import DRAFT_TAG, JournalDraft, JournalError, NotAllowed, NotFound, Note, Notebook, Person, Refused, may_change

ALL, DRAFTS_ONLY, HIDE_DRAFTS = "All entries", "Drafts only", "Hide drafts"
FILTERS = [ALL, DRAFTS_ONLY, HIDE_DRAFTS]


def is_draft(note: Note) -> bool:
    """A draft waits for a person as long as it carries the tag (Accept takes it off)."""
    return DRAFT_TAG in note.tags


def waiting_draft_count(notebook: Notebook) -> int:
    """How many drafts wait for a person (Home says so)."""
    return notebook.count_waiting_drafts()


def filtered_page(notebook: Notebook, shown: str, *, newest_first: bool, owner: str | None, limit: int,
                  offset: int) -> tuple[list[Note], int]:
    """One page of the Journal under the drafts filter, and how many entries it has in all. "All entries" pages
    in the database; the other two page through the light headings (no bodies, no figures) against the ids of
    the drafts that wait, and load only the page's notes."""
    if shown == ALL:
        page = notebook.notes_page(newest_first=newest_first, owner=owner, limit=limit, offset=offset)
        return page.notes, page.total
    drafts = {note.id for note in notebook.waiting_drafts()}
    ids = [h.id for h in notebook.note_headings(newest_first=newest_first)
           if (owner is None or h.owner == owner) and ((h.id in drafts) == (shown == DRAFTS_ONLY))]
    notes = []
    for note_id in ids[offset:offset + limit]:
        try:
            notes.append(notebook.get_note(note_id))
        except NotFound:  # deleted between the two reads: the page shows one fewer
            continue
    return notes, len(ids)


def only_matching(notes: Sequence[Note], shown: str) -> list[Note]:
    """`notes` (search results) under the drafts filter."""
    return [n for n in notes if shown == ALL or is_draft(n) == (shown == DRAFTS_ONLY)]


def run_links(run_ids: Sequence[int], alive: set[int]) -> str:
    """Markdown links to the runs, or for a run deleted since, words that say so (the entry outlives it)."""
    return "runs " + ", ".join(f"[{i}](/run?run={i})" if i in alive else f"{i} (run deleted)" for i in run_ids)


def regenerate_refusal(draft: JournalDraft | None) -> str:
    """Why Regenerate may not rewrite this draft ("" when it may): a person's words are never overwritten."""
    if draft is None:
        return "this draft was not written by the notebook, so there is nothing to regenerate it from"
    if draft.edited:
        return "a person has edited this draft: regenerating would overwrite their words (edit it instead)"
    if draft.run_id is None:
        return "only a run's draft is regenerated here"
    if draft.run_deleted:
        return f"run {draft.run_id} was deleted: there is nothing left to write its draft from"
    return ""


def draft_badge(note: Note) -> None:
    """The mark that says a person has not accepted this entry yet."""
    st.badge("Draft — written by the notebook, waiting for you", icon="📝", color="orange")


def draft_actions(notebook: Notebook, note: Note, me: Person) -> None:
    """Accept, Edit (the page's own note editor), Discard (with a confirm) and Regenerate, for a draft."""
    may = may_change(me, note.owner, "change this draft")
    draft = notebook.draft_of(note.id)
    refusal = regenerate_refusal(draft)
    accept, edit, discard, again = st.columns([1, 0.8, 1, 1.4])
    if accept.button("✓ Accept", key=f"accept:{note.id}", disabled=not may, help=may.reason or
                     "Keep the text as it is and take the draft mark off"):
        _act(lambda: notebook.accept_draft(note.id, by=me))
    if edit.button("Edit", key=f"edit:{note.id}", disabled=not may, help=may.reason or None):
        st.session_state["editing"] = note.id
        st.rerun()
    with discard.popover("🗑 Discard", disabled=not may, help=may.reason or None):
        st.write("Delete this draft? Its text and figures go; the run stays.")
        if st.button("Yes, discard this draft", key=f"discard:{note.id}"):
            _act(lambda: notebook.delete_note(note.id, by=me))
    if again.button("↻ Regenerate", key=f"regenerate:{note.id}", disabled=bool(refusal) or not may,
                    help=refusal or may.reason or "Write this draft again from the run's stored results"):
        _act(lambda: jobs.regenerate_draft(notebook, note.id, by=me))


def _act(action: Any) -> None:
    """Do what a button asked and show the page again, or say why it was not done (the page goes on)."""
    try:
        action()
    except (NotAllowed, NotFound, Refused, JournalError, ValueError) as refusal:
        st.error(f"Not done — {refusal}")
        return
    st.rerun()
