"""`python -m engine journal …`: the journal's drafts from the command line.

- `journal draft RUN [--db URL] [--print]`: write or rewrite the draft of one ended run (a draft a person has
  edited is left alone and a new one written beside it) and print its note id, or its Markdown with --print.
- `journal drafts [--db URL]`: list the drafts that wait to be accepted."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from lab_notes import Notebook


def register(commands: Any, with_db: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    """Add the `journal` command and its subcommands to the CLI's subparsers."""
    journal = commands.add_parser("journal", help="the journal's drafts: write one, list those that wait")
    subs = journal.add_subparsers(dest="journal_command", required=True)
    draft = with_db(subs.add_parser("draft", help="write or rewrite the draft of one ended run; prints it"))
    draft.add_argument("run", type=int)
    draft.add_argument("--print", dest="show", action="store_true", help="print the draft's Markdown")
    draft.add_argument("--language", choices=["en", "zh"],
                       help="the draft's language (default: $LAB_JOURNAL_LANGUAGE, else en)")
    draft.set_defaults(handler=_draft)
    waiting = with_db(subs.add_parser("drafts", help="list the drafts that wait to be accepted"))
    waiting.set_defaults(handler=_drafts)


def _draft(args: argparse.Namespace) -> int:
    from engine.journal_drafts import write_run_draft

    with Notebook(args.db) as book:
        written = write_run_draft(book, args.run, language=args.language)
    if written is None:
        print(f"run {args.run} stopped before its first step: it gets no draft")
        return 0
    if args.show:
        print(f"# {written.title}\n\n{written.body}", end="")
    else:
        print(f"note {written.note_id}: {written.title}")
    return 0


def _drafts(args: argparse.Namespace) -> int:
    with Notebook(args.db) as book:
        notes = book.waiting_drafts()
        for note in notes:
            draft = book.draft_of(note.id)
            about = ("" if draft is None else
                     f"sweep {draft.sweep_id}" if draft.sweep_id is not None else
                     f"run {draft.run_id}{' (deleted)' if draft.run_deleted else ''}")
            edited = " · edited" if draft is not None and draft.edited else ""
            print(f"{note.id}\t{note.entry_date or '—'}\t{about}{edited}\t{note.title}")
    if not notes:
        print("no drafts wait")
    return 0
