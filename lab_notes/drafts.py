"""Journal drafts: the dated entry the notebook writes itself when a run (or a sweep) ends. A draft is an ordinary
note tagged `draft`, linked to its run(s), owned by the run's owner and dated the day the run ended (the server's
local time). Its text as generated is fingerprinted, so a person's edit is seen: a draft someone edited is never
rewritten; the next generation writes a second draft beside it."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Sequence

from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from lab_notes.db import NotFound, get_row, now
from lab_notes.notes import NotesStore, _check_figures, _check_size, _link
from lab_notes.owners import LOCAL_USER, Person
from lab_notes.records import FINAL_STATUSES, Figure, Note
from lab_notes.runs import Refused
from lab_notes.schema import DraftEndingRow, DraftRow, FigureRow, NoteRow, RunRow, SweepRow

DRAFT_TAG = "draft"


@dataclass(frozen=True)
class JournalDraft:
    """What the notebook knows of a note it wrote itself. `edited`: a person changed its title or body since it
    was last generated; `waiting`: still tagged draft (not yet accepted); `run_deleted`: its run is gone."""

    note_id: int
    run_id: int | None
    sweep_id: int | None
    language: str
    edited: bool
    waiting: bool
    run_deleted: bool


@dataclass(frozen=True)
class EndedRun:
    """A run whose latest ending (`attempt`) has no draft yet."""

    run_id: int
    attempt: int
    status: str


def text_fingerprint(title: str, body: str) -> str:
    """sha256 of a note's title and body: what tells a generated text from one a person edited."""
    return hashlib.sha256(f"{title}\n\x00\n{body}".encode("utf-8")).hexdigest()


def run_ending_key(run_id: int, attempt: int) -> str:
    return f"run:{run_id}:{attempt}"


def sweep_ending_key(sweep_id: int, attempts: int) -> str:
    """A sweep's ending: `attempts` is the sum of its runs' attempts, so a sweep run resumed and ended again makes
    a new ending (and the sweep's entry is rewritten unless edited)."""
    return f"sweep:{sweep_id}:{attempts}"


class DraftsStore(NotesStore):
    def draft_of(self, note_id: int) -> JournalDraft | None:
        """The draft record of a note the notebook wrote (accepted or not); None for any other note."""
        with self._read() as session:
            found = session.execute(select(DraftRow, NoteRow).join(NoteRow, NoteRow.id == DraftRow.note_id)
                                    .where(DraftRow.note_id == note_id)).first()
            if found is None:
                return None
            draft, note = found
            run_deleted = False
            if draft.run_id is not None:
                status = session.scalar(select(RunRow.status).where(RunRow.id == draft.run_id))
                run_deleted = status is None or status == "deleted"
            return JournalDraft(note_id, draft.run_id, draft.sweep_id, draft.language,
                                text_fingerprint(note.title, note.body) != draft.generated_sha,
                                DRAFT_TAG in (note.tags or []), run_deleted)

    def waiting_drafts(self) -> list[Note]:
        """Every note tagged `draft` (newest entry first), whoever wrote it."""
        query = select(NoteRow).where(self._may_be_draft()).order_by(
            NoteRow.entry_date.is_(None), NoteRow.entry_date.desc(), NoteRow.id.desc())
        return [note for note in self._notes(query) if DRAFT_TAG in note.tags]  # the LIKE only narrows

    def count_waiting_drafts(self) -> int:
        """How many notes are tagged `draft` (for the Home page)."""
        with self._read() as session:
            return sum(1 for tags in session.scalars(select(NoteRow.tags).where(self._may_be_draft()))
                       if DRAFT_TAG in (tags or []))

    def accept_draft(self, note_id: int, *, by: Person = LOCAL_USER) -> None:
        """Remove the `draft` tag and keep the text. Only the note's owner or an admin may (NotAllowed); Refused
        when the note is not a waiting draft."""
        note = self.get_note(note_id)
        if DRAFT_TAG not in note.tags:
            raise Refused(f"note {note_id} is not a draft waiting to be accepted")
        self.update_note(note_id, tags=[t for t in note.tags if t != DRAFT_TAG], by=by)

    def save_draft(self, *, run_id: int | None = None, sweep_id: int | None = None, title: str, body: str,
                   figures: Sequence[Figure] = (), language: str = "en", ending: str | None = None) -> int:
        """Write the draft of an ended run (or of a sweep whose runs have all ended); its note id. Idempotent:
        the newest waiting draft of the run that no person has edited is rewritten in place; when every one was
        edited (or accepted), a new draft is written beside it. `ending` (run_ending_key / sweep_ending_key)
        records which ending this draft writes up, in the same transaction. Refused for a run that has not ended
        (or was deleted); NotFound for an unknown run or sweep."""
        if (run_id is None) == (sweep_id is None):
            raise ValueError("a draft is of one run or of one sweep: give run_id or sweep_id")
        _check_size(body)
        _check_figures(figures)
        try:
            return self._save_draft(run_id, sweep_id, title, body, figures, language, ending)
        except IntegrityError:  # another writer recorded this ending first: its draft stands, rewritten by ours
            return self._save_draft(run_id, sweep_id, title, body, figures, language, None)

    def _save_draft(self, run_id: int | None, sweep_id: int | None, title: str, body: str,
                    figures: Sequence[Figure], language: str, ending: str | None) -> int:
        with self._write() as session:
            entry_date, owner, run_ids = self._subject(session, run_id, sweep_id)
            sha = text_fingerprint(title, body)
            note_id = self._unedited_draft(session, run_id, sweep_id)
            if note_id is None:
                note_id = self._insert_note(session, entry_date, title, body, run_ids=run_ids, figures=figures,
                                            tags=[DRAFT_TAG], owner=owner)
                session.add(DraftRow(note_id=note_id, run_id=run_id, sweep_id=sweep_id, generated_sha=sha,
                                     language=language))
            else:
                note = get_row(session, NoteRow, note_id)
                note.entry_date, note.title, note.body, note.updated_at = entry_date, title, body, now()
                session.query(FigureRow).filter(FigureRow.note_id == note_id).delete()
                _link(session, note_id, (), figures)
                draft = get_row(session, DraftRow, note_id)
                draft.generated_sha, draft.language = sha, language
            if ending is not None:
                session.add(DraftEndingRow(key=ending, run_id=run_id, sweep_id=sweep_id, written_at=now()))
                session.flush()
            return note_id

    def _subject(self, session: Session, run_id: int | None,
                 sweep_id: int | None) -> tuple[dt.date | None, str | None, list[int]]:
        """The draft's date, owner and linked runs: the run's, or the sweep's (its runs, the last ending)."""
        if run_id is not None:
            run = session.get(RunRow, run_id)
            if run is None:
                raise NotFound(f"no run {run_id}")
            if run.status not in FINAL_STATUSES or run.ended_at is None:
                raise Refused(f"run {run_id} is {run.status}: a draft is written only for a run that has ended")
            return local_date(run.ended_at), run.owner, [run_id]
        if session.get(SweepRow, sweep_id) is None:
            raise NotFound(f"no sweep {sweep_id}")
        runs = list(session.scalars(select(RunRow).where(RunRow.sweep_id == sweep_id).order_by(RunRow.id)))
        waiting = [r.id for r in runs if r.status in ("queued", "running")]
        if waiting:
            raise Refused(f"sweep {sweep_id} has runs that have not ended ({', '.join(map(str, waiting))}): "
                          "its entry is written when every run has ended")
        ended = [r.ended_at for r in runs if r.ended_at is not None]
        return (local_date(max(ended)) if ended else None, runs[0].owner if runs else None, [r.id for r in runs])

    def _unedited_draft(self, session: Session, run_id: int | None, sweep_id: int | None) -> int | None:
        """The newest waiting draft of the run (or sweep) whose text is as generated, locked for the rewrite."""
        subject = DraftRow.run_id == run_id if run_id is not None else DraftRow.sweep_id == sweep_id
        query = (select(DraftRow, NoteRow).join(NoteRow, NoteRow.id == DraftRow.note_id).where(subject)
                 .order_by(DraftRow.note_id.desc()))
        if self.dialect == "postgresql":
            query = query.with_for_update()  # a person's edit waits for the rewrite, or the rewrite sees the edit
        for draft, note in session.execute(query):
            if DRAFT_TAG in (note.tags or []) and text_fingerprint(note.title, note.body) == draft.generated_sha:
                return draft.note_id
        return None

    def ending_written(self, key: str) -> bool:
        """Whether this ending (run_ending_key / sweep_ending_key) has been written up."""
        with self._read() as session:
            return session.get(DraftEndingRow, key) is not None

    def endings_without_draft(self, limit: int = 20) -> list[EndedRun]:
        """Runs whose latest ending has not been written up (oldest first): what a catch-up pass drafts, so a
        crash between a run's end and its draft loses nothing."""
        key = "run:" + cast(RunRow.id, String) + ":" + cast(RunRow.attempt, String)
        query = (select(RunRow.id, RunRow.attempt, RunRow.status)
                 .outerjoin(DraftEndingRow, DraftEndingRow.key == key)
                 .where(RunRow.status.in_(FINAL_STATUSES), RunRow.ended_at.is_not(None), DraftEndingRow.key.is_(None))
                 .order_by(RunRow.ended_at, RunRow.id).limit(limit))
        with self._read() as session:
            return [EndedRun(r.id, r.attempt, r.status) for r in session.execute(query)]

    def mark_ending_written(self, key: str, *, run_id: int | None = None, sweep_id: int | None = None) -> bool:
        """Record an ending that gets no draft (a run stopped before its first step); False when already there."""
        try:
            with self._write() as session:
                session.add(DraftEndingRow(key=key, run_id=run_id, sweep_id=sweep_id, written_at=now()))
                session.flush()
            return True
        except IntegrityError:
            return False

    def _may_be_draft(self) -> ColumnElement:
        """Notes whose tags may hold `draft` (JSON text contains the quoted word); callers check exactly."""
        return cast(NoteRow.tags, String).like(f'%"{DRAFT_TAG}"%')


def local_date(moment: dt.datetime) -> dt.date:
    """The day `moment` fell on in the server's local time zone (a naive time is UTC, as the notebook stores)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone().date()
