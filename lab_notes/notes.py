"""Dated notes (Markdown, figures, tags, linked runs), full-text search, and the journal file in and out."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Any, Sequence

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from lab_notes.db import Database, NotFound, as_utc, get_row, now
from lab_notes.images import check_image
from lab_notes.owners import LOCAL_USER, Person, refuse_unless_allowed
from lab_notes.records import Figure, Note, NoteDraft, NoteHeading
from lab_notes.schema import FigureRow, NoteRow, NoteRunRow


@dataclass(frozen=True)
class NotesPage:
    """One page of notes and how many there are in all."""

    notes: list[Note]
    total: int


class NotesStore(Database):
    def add_note(self, entry_date: dt.date | None, title: str, body_markdown: str, *, run_ids: Sequence[int] = (),
                 figures: Sequence[Figure] = (), tags: Sequence[str] = (), owner: str | None = None) -> int:
        """A new note written by `owner` (None: the local user)."""
        return self.add_notes([NoteDraft(entry_date, title, body_markdown, tuple(run_ids), tuple(figures),
                                         tuple(tags))], owner=owner)[0]

    def add_notes(self, drafts: Sequence[NoteDraft], *, owner: str | None = None) -> list[int]:
        """Several notes in one transaction, all by `owner`: all are written or none."""
        for draft in drafts:
            _check_size(draft.body)
            _check_figures(draft.figures)
        with self._write() as session:
            return [self._insert_note(session, d.entry_date, d.title, d.body, run_ids=d.run_ids, figures=d.figures,
                                      tags=d.tags, owner=owner) for d in drafts]

    def _insert_note(self, session: Session, entry_date: dt.date | None, title: str, body: str, *,
                     run_ids: Sequence[int], figures: Sequence[Figure], tags: Sequence[str],
                     owner: str | None = None) -> int:
        """One note inside the caller's transaction (a diverged run writes its note with its final status; its
        owner is the local user's None, as a run's own notes are nobody's edit)."""
        stamp = now()
        row = NoteRow(entry_date=entry_date, title=title, body=body, tags=list(tags), created_at=stamp,
                      updated_at=stamp, owner=owner)
        session.add(row)
        session.flush()
        _link(session, row.id, run_ids, figures)
        return row.id

    def update_note(self, note_id: int, *, entry_date: dt.date | None | EllipsisType = ...,
                    title: str | None = None, body_markdown: str | None = None, run_ids: Sequence[int] | None = None,
                    figures: Sequence[Figure] | None = None, tags: Sequence[str] | None = None,
                    by: Person = LOCAL_USER) -> None:
        """Change what is given; `figures` and `run_ids`, when given, replace the old ones. Only the note's owner
        or an admin may (`by`; the local user of single-user mode may do everything): NotAllowed otherwise."""
        _check_size(body_markdown)
        _check_figures(figures or ())
        with self._write() as session:
            row = get_row(session, NoteRow, note_id)
            refuse_unless_allowed(by, row.owner, f"edit note {note_id}")
            if entry_date is not ...:
                row.entry_date = entry_date
            if title is not None:
                row.title = title
            if body_markdown is not None:
                row.body = body_markdown
            if tags is not None:
                row.tags = list(tags)
            row.updated_at = now()
            if run_ids is not None:
                session.execute(delete(NoteRunRow).where(NoteRunRow.note_id == note_id))
            if figures is not None:
                session.execute(delete(FigureRow).where(FigureRow.note_id == note_id))
            _link(session, note_id, run_ids or (), figures or ())

    def delete_note(self, note_id: int, *, by: Person = LOCAL_USER) -> None:
        """Only the note's owner or an admin may delete it (NotAllowed otherwise)."""
        with self._write() as session:
            row = get_row(session, NoteRow, note_id)
            refuse_unless_allowed(by, row.owner, f"delete note {note_id}")
            session.delete(row)

    def get_note(self, note_id: int) -> Note:
        notes = self._notes(select(NoteRow).where(NoteRow.id == note_id))
        if not notes:
            raise NotFound(f"no note {note_id}")
        return notes[0]

    def list_notes(self, run_id: int | None = None, *, newest_first: bool = False, owner: str | None = None,
                   limit: int | None = None, offset: int = 0) -> list[Note]:
        """By entry date (undated entries last), then by id; `limit` notes from `offset` (None: all of them);
        `owner`: one person's notes only (None: everyone's)."""
        query = select(NoteRow)
        if run_id is not None:
            query = query.join(NoteRunRow, NoteRunRow.note_id == NoteRow.id).where(NoteRunRow.run_id == run_id)
        if owner is not None:
            query = query.where(NoteRow.owner == owner)
        order = NoteRow.entry_date.desc() if newest_first else NoteRow.entry_date.asc()
        query = query.order_by(NoteRow.entry_date.is_(None), order, NoteRow.id)
        return self._notes(query.limit(limit).offset(offset) if limit is not None else query)

    def notes_page(self, *, newest_first: bool = False, owner: str | None = None, limit: int = 50,
                   offset: int = 0) -> NotesPage:
        """One page of notes in list_notes's order and the count of all of them (`owner`'s only, when given): the
        cost stays that of one page however many notes there are."""
        counted = select(func.count()).select_from(NoteRow)
        with self._read() as session:
            total = session.scalar(counted.where(NoteRow.owner == owner) if owner is not None else counted) or 0
        return NotesPage(self.list_notes(newest_first=newest_first, owner=owner, limit=limit, offset=offset), total)

    def note_headings(self, *, newest_first: bool = True) -> list[NoteHeading]:
        """Every note's heading, without loading figures: for pickers."""
        order = NoteRow.entry_date.desc() if newest_first else NoteRow.entry_date.asc()
        with self._read() as session:
            query = select(NoteRow.id, NoteRow.entry_date, NoteRow.title, func.substr(NoteRow.body, 1, 60),
                           NoteRow.owner)
            rows = session.execute(query.order_by(NoteRow.entry_date.is_(None), order, NoteRow.id)).all()
        return [NoteHeading(r[0], r[1], r[2], r[3] or "", r[4]) for r in rows]

    def search_notes(self, text_: str) -> list[Note]:
        """Notes whose title or body contains `text_` (every word of it), best match first on SQLite."""
        words = [w for w in text_.replace("\x00", " ").split() if w]  # a NUL can be neither typed nor stored
        if not words:
            return []
        if self.dialect == "sqlite" and all(len(w) >= 3 for w in words):
            # FTS5 trigram index: each word quoted, so user text is never read as FTS syntax.
            match = " AND ".join('"' + w.replace('"', '""') + '"' for w in words)
            with self._read() as session:
                ids = list(session.scalars(text("SELECT rowid FROM notes_fts WHERE notes_fts MATCH :q "
                                                "ORDER BY rank"), {"q": match}))
            found = {n.id: n for n in self._notes(select(NoteRow).where(NoteRow.id.in_(ids)))}
            return [found[i] for i in ids if i in found]
        literal = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words]  # not wildcards
        conditions = [or_(NoteRow.title.ilike(f"%{w}%", escape="\\"), NoteRow.body.ilike(f"%{w}%", escape="\\"))
                      for w in literal]
        return self._notes(select(NoteRow).where(*conditions).order_by(NoteRow.entry_date, NoteRow.id))

    def _notes(self, query: Any) -> list[Note]:
        with self._read() as session:
            rows = list(session.scalars(query).unique())
            if not rows:
                return []
            ids = [r.id for r in rows]
            links: dict[int, list[int]] = {}
            for note_id, run_id in session.execute(select(NoteRunRow.note_id, NoteRunRow.run_id)
                                                   .where(NoteRunRow.note_id.in_(ids)).order_by(NoteRunRow.run_id)):
                links.setdefault(note_id, []).append(run_id)
            figures: dict[int, list[Figure]] = {}
            for f in session.scalars(select(FigureRow).where(FigureRow.note_id.in_(ids))
                                     .order_by(FigureRow.note_id, FigureRow.position)):
                figures.setdefault(f.note_id, []).append(Figure(f.name, f.image, f.caption, f.chart_spec, f.missing,
                                                                 f.owner))
            return [Note(r.id, r.entry_date, r.title, r.body, list(r.tags or []), links.get(r.id, []),
                         figures.get(r.id, []), as_utc(r.created_at), as_utc(r.updated_at), r.owner) for r in rows]

    # --- the journal file ---------------------------------------------------------------------------------------

    def import_journal(self, md_path: str | Path, pic_dir: str | Path | None = None) -> list[int]:
        """Import a Markdown journal file (dated headings) in one transaction; returns the new note ids."""
        from lab_notes.journal import parse_journal

        return self._add_entries(parse_journal(Path(md_path), Path(pic_dir) if pic_dir else None))

    def import_journal_upload(self, md_bytes: bytes, zip_bytes: bytes | None = None, *,
                              source: str = "journal.md", owner: str | None = None) -> list[int]:
        """Import an uploaded journal and, optionally, a zip of its pictures, all in memory: only the pictures the
        journal references are read from the zip, within caps; any problem is a JournalError and nothing is
        written. The notes are `owner`'s (who imported them; None: the local user)."""
        from lab_notes.journal import parse_journal_text, pictures_from_zip, read_journal_text, wanted_pictures

        content = read_journal_text(md_bytes, source)
        pictures = pictures_from_zip(zip_bytes, wanted_pictures(content)) if zip_bytes else {}
        return self._add_entries(parse_journal_text(content, source, pictures=pictures), owner=owner)

    def _add_entries(self, entries, owner: str | None = None) -> list[int]:
        return self.add_notes([NoteDraft(e.entry_date, "", e.body, figures=tuple(e.figures)) for e in entries],
                              owner=owner)

    def export_journal(self, out_dir: str | Path, *, replace: bool = False, include_drafts: bool = False) -> Path:
        """Write `journal.md` and `pic/` into `out_dir` (empty, or replaced when asked); returns journal.md. Drafts
        that wait (tag `draft`) only when `include_drafts`."""
        from lab_notes.journal import write_journal

        return write_journal(self.list_notes(), Path(out_dir), replace=replace, include_drafts=include_drafts)


def _check_size(body: str | None) -> None:
    from lab_notes.journal import MAX_NOTE_CHARS, JournalError

    if body is not None and len(body) > MAX_NOTE_CHARS:
        raise JournalError(f"a note of {len(body):,} characters is over the {MAX_NOTE_CHARS:,}-character cap")


def _check_figures(figures: Sequence[Figure]) -> None:
    """Validate every figure before anything is written, so a bad one leaves the notebook unchanged."""
    for figure in figures:
        if figure.image is not None:
            check_image(figure.image, f"figure {figure.name!r}")


def _link(session: Session, note_id: int, run_ids: Sequence[int], figures: Sequence[Figure]) -> None:
    for run_id in dict.fromkeys(run_ids):
        session.add(NoteRunRow(note_id=note_id, run_id=run_id))
    for position, f in enumerate(figures):
        session.add(FigureRow(note_id=note_id, position=position, name=f.name, caption=f.caption, image=f.image,
                              missing=f.missing if f.image is None else None, chart_spec=f.chart_spec,
                              owner=f.owner))
