"""The journal: dated entries rendered like the original (headings, prose, figures), written and edited in
Markdown with a preview, linked to runs; search, import a journal file, export journal.md + pic/ as a zip.
Note Markdown is rendered without raw HTML, so a note cannot run script in the page."""

import dataclasses
import datetime as dt
import hashlib
import html
import io
import re
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from app.drafts_view import (ALL, DRAFTS_ONLY, FILTERS, draft_actions, draft_badge, filtered_page, is_draft, only_matching,
                             run_links)
from app.identity import author_in_words, current_person, made_by, sign_in_is_on, whose_filter
from app.literal import literal, literal_code
from app.reproductions import mirrored_in, passages, show_reproduction
from app.services import open_notebook
from app.widgets import show_image
from lab_notes import (MAX_IMAGE_BYTES, PREVIEW_CHARS, BadImage, Figure, JournalError, NotAllowed, body_segments,
                       check_image, may_change)

notebook = open_notebook()
me = current_person()
st.title("Journal")
PAGE_SIZE = 50  # notes a page shows, as the Runs page pages runs


@st.cache_data(max_entries=2000, show_spinner=False)
def rendered(key: tuple, _body: str) -> list:
    """A body's segments, rendered once per edit: `key` is (note id, its last change) for a stored note, ("draft",
    digest) for the editor's text; the body itself is left out of the cache's hashing (it may be megabytes)."""
    return body_segments(_body)


def render_body(segments: list, figures: list[Figure], *, rest: bool = True) -> set[str]:
    """Prose rendered from CommonMark with every raw HTML of the note escaped (shown as text, never run); each
    figure drawn from the note's stored images or as a placeholder; a web image only as a link, never fetched.
    The figures the text does not place come last (unless not `rest`); returns the names it placed."""
    by_name = {f.name: f for f in figures}
    shown = set()
    for segment in segments:
        if isinstance(segment, str):
            # One line (body_segments leaves no line break in it), so one raw-HTML block: nothing of it is read
            # as Markdown again.
            st.markdown("<div>" + segment + "</div>", unsafe_allow_html=True)
        elif segment.remote:
            link = html.escape(segment.src, quote=True)
            shown_as = (f'<a href="{link}" rel="noopener noreferrer">{link}</a>'
                        if segment.src.lower().startswith(("https://", "http://")) else link)
            st.markdown(f"<div>🔗 Web image, not loaded: {html.escape(segment.alt)} {shown_as}</div>",
                        unsafe_allow_html=True)
        else:
            show_figure(by_name.get(segment.name) or by_name.get(segment.src)
                        or Figure(segment.name, missing="not in this note"))
            shown.add(segment.name)
    for figure in figures if rest else []:
        if figure.name not in shown:
            show_figure(figure)
    return shown


def render_beside_reproductions(note, mirrored: list) -> None:
    """An original journal entry cut into the passages presets mirror, each with its reproduction to its right:
    the original's text and placeholders stay where they are, on the left, and nothing of a run is drawn there."""
    before, parts = passages(note.body, mirrored)
    shown: set[str] = set()
    if before.strip():
        shown |= render_body(rendered((note.id, note.updated_at, "before"), before), note.figures, rest=False)
    for index, (mirror, text) in enumerate(parts):
        original, reproduction = st.columns([3, 2], gap="medium")
        with original:
            shown |= render_body(rendered((note.id, note.updated_at, index), text), note.figures, rest=False)
        with reproduction:
            show_reproduction(notebook, mirror.preset)
    for figure in note.figures:
        if figure.name not in shown:
            show_figure(figure)


def render_preview(body: str, figures: list[Figure]) -> None:
    """The editor's preview, through the page's renderer and cache: the first PREVIEW_CHARS characters, and how
    much more there is."""
    text = body[:PREVIEW_CHARS]
    render_body(rendered(("draft", hashlib.sha256(text.encode()).hexdigest()), text), figures)
    if len(body) > len(text):
        st.info(f"Preview shows the first {PREVIEW_CHARS:,} characters; {len(body) - len(text):,} more are not "
                "previewed (saved and shown in full).")


def show_figure(figure: Figure) -> None:
    if figure.image is not None:
        show_image(figure.image, caption=literal(figure.caption or figure.name), width=560)
    else:
        st.warning(f"🖼️ Missing figure **{literal(figure.name)}** — {literal(figure.missing or 'no image stored')}")


def uploaded_figures(files) -> tuple[list[Figure], list[str]]:
    figures, problems = [], []
    for file in files or []:
        data = file.getvalue()
        try:
            check_image(data, file.name)
        except BadImage as error:
            problems.append(str(error))
            continue
        figures.append(Figure(Path(file.name).name, data, Path(file.name).stem))
    return figures, problems


def note_editor(key: str, *, note=None) -> None:
    """Date, title, Markdown body with a preview, linked runs, tags and images; saves a new note or `note`."""
    run_names = {run_id: f"{run_id} · {name}" for run_id, name in notebook.run_names().items()}
    day = st.date_input("Date", value=note.entry_date if note and note.entry_date else dt.date.today(),
                        key=f"{key}:date")
    title = st.text_input("Title", value=note.title if note else "", key=f"{key}:title")
    write, preview = st.tabs(["Write", "Preview"])
    with write:
        body = st.text_area("Markdown", value=note.body if note else "", height=220, key=f"{key}:body",
                            help="Markdown; figures are ![caption](./pic/name.png) or attached below. Raw HTML is "
                                 "shown as text, never run.")
    with preview:
        render_preview(body, list(note.figures) if note else [])
    linked = st.multiselect("Linked runs", list(run_names), default=[i for i in (note.run_ids if note else [])
                                                                   if i in run_names],
                            format_func=run_names.__getitem__, key=f"{key}:runs")
    tags = st.text_input("Tags (comma-separated)", value=", ".join(note.tags) if note else "", key=f"{key}:tags")
    files = st.file_uploader(f"Attach images (PNG/JPEG, up to {MAX_IMAGE_BYTES // 2**20} MB each)",
                             type=["png", "jpg", "jpeg", "gif", "webp"], accept_multiple_files=True,
                             key=f"{key}:files")
    if st.button("Save note", key=f"{key}:save", type="primary"):
        figures, problems = uploaded_figures(files)
        for problem in problems:
            st.error(f"Not attached — {problem}")
        if problems:
            return
        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
        try:
            figures = [dataclasses.replace(f, owner=me.name) for f in figures]
            if note is None:
                notebook.add_note(day, title.strip(), body, run_ids=linked, figures=figures, tags=tag_list,
                              owner=me.name)
            else:
                notebook.update_note(note.id, entry_date=day, title=title.strip(), body_markdown=body, run_ids=linked,
                                 figures=[*note.figures, *figures], tags=tag_list, by=me)
        except (JournalError, NotAllowed) as error:
            st.error(f"Not saved — {error}")
            return
        st.session_state.pop("editing", None)
        st.rerun()


def note_actions(note) -> None:
    """Edit and Delete (after a confirm) for an entry a person keeps."""
    may_edit = may_change(me, note.owner, "edit this note")
    edit, delete = st.columns([1, 8])
    if edit.button("Edit", key=f"edit:{note.id}", disabled=not may_edit, help=may_edit.reason or None):
        st.session_state["editing"] = note.id
        st.rerun()
    with delete.popover("Delete", disabled=not may_edit, help=may_edit.reason or None):
        if st.button("Yes, delete this note", key=f"delete:{note.id}"):
            try:
                notebook.delete_note(note.id, by=me)
            except NotAllowed as refusal:
                st.error(str(refusal))
            else:
                st.rerun()


with st.expander("✍️ New note"):
    note_editor("new")

with st.expander("⇅ Import / export"):
    left, right = st.columns(2)
    # A form, so both files arrive with the click: no rerun between one upload and the other.
    with left, st.form("import", clear_on_submit=True):
        md_file = st.file_uploader("Journal file (.md)", type=["md", "markdown", "txt"], key="import:md")
        pic_zip = st.file_uploader("Its pic/ folder as a .zip (optional)", type=["zip"], key="import:zip")
        if st.form_submit_button("Import"):
            if md_file is None:
                st.error("Choose a journal file (.md) to import.")
            else:
                try:  # all in memory: a refusal writes nothing anywhere
                    ids = notebook.import_journal_upload(md_file.getvalue(),
                                                     pic_zip.getvalue() if pic_zip is not None else None,
                                                     source=md_file.name, owner=me.name)
                    st.success(f"Imported {len(ids)} entries.")
                except JournalError as error:
                    st.error(f"Nothing imported: {error}")
    with right:
        with_drafts = st.checkbox("Include drafts that wait", key="export:drafts",
                                  help="Accepted entries are always exported; drafts only when this is ticked.")
        if st.button("Prepare export"):
            with tempfile.TemporaryDirectory() as folder:
                notebook.export_journal(folder, include_drafts=with_drafts)
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                    for path in sorted(Path(folder).rglob("*")):
                        if path.is_file():
                            archive.write(path, path.relative_to(folder).as_posix())
                st.session_state["export_zip"] = buffer.getvalue()
        if "export_zip" in st.session_state:
            st.download_button("⬇ Download journal.zip", st.session_state["export_zip"],
                               file_name=f"journal-{dt.date.today():%Y%m%d}.zip", mime="application/zip")

whose = whose_filter("journal:whose")
search_col, order_col = st.columns([3, 1])
query = search_col.text_input("Search notes", placeholder="words in titles or text, e.g. 准确率 or NaN",
                              key="journal:search")
newest_first = order_col.radio("Order", ["Newest first", "Oldest first"], horizontal=True) == "Newest first"
if st.query_params.get("show") == "drafts" and "journal:drafts" not in st.session_state:  # Home's link
    st.session_state["journal:drafts"] = DRAFTS_ONLY
shown = st.radio("Drafts", FILTERS, horizontal=True, key="journal:drafts", label_visibility="collapsed")
number = st.session_state.get("journal_page", 1)
if query.strip():
    found = only_matching(made_by(notebook.search_notes(query), whose), shown)
    if newest_first:
        found = sorted(found, key=lambda n: (n.entry_date or dt.date.min), reverse=True)
    total = len(found)
    if (number - 1) * PAGE_SIZE >= total:
        number = 1
    notes = found[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
else:
    notes, total = filtered_page(notebook, shown, newest_first=newest_first, owner=whose, limit=PAGE_SIZE,
                                 offset=(number - 1) * PAGE_SIZE)
    if not notes and number > 1:  # fewer notes than before (deleted, or another person's): the first page
        number = 1
        notes, total = filtered_page(notebook, shown, newest_first=newest_first, owner=whose, limit=PAGE_SIZE, offset=0)
if st.session_state.get("journal_page", 1) != number:
    st.session_state["journal_page"] = number
pages = -(-total // PAGE_SIZE)
if pages > 1:
    st.number_input(f"Page (of {pages}; {total:,} notes)", 1, pages, key="journal_page")
if not notes:
    st.info("No notes match." if query.strip() or whose or shown != ALL else
            "The journal is empty: write a note or import a journal file.")

alive = set(notebook.run_names()) if any(note.run_ids for note in notes) else set()
for note in notes:
    st.markdown(f"### {note.entry_date:%Y.%m.%d}" if note.entry_date else "### (undated)")
    if is_draft(note):
        draft_badge(note)
    if note.title:
        st.markdown("**" + re.sub(r"([*_`\\])", r"\\\1", note.title) + "**")
    meta = [f"by {author_in_words(note.owner)}"] if sign_in_is_on() else []
    if note.run_ids:
        meta.append(run_links(note.run_ids, alive))
    if note.tags:
        meta.append("tags " + ", ".join(literal_code(t) for t in note.tags))
    if meta:
        st.caption(" · ".join(meta))
    if st.session_state.get("editing") == note.id:
        note_editor(f"edit{note.id}", note=note)
    else:
        mirrored = mirrored_in(note)
        if mirrored:
            render_beside_reproductions(note, mirrored)
        else:
            render_body(rendered((note.id, note.updated_at), note.body), note.figures)
        if is_draft(note):
            draft_actions(notebook, note, me)  # Accept, Edit, Discard, Regenerate
        else:
            note_actions(note)
    st.divider()
