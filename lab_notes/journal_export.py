"""Writing the journal: `journal.md` and `pic/` in the original's format, every entry kept whatever its body is.

After each body but the last comes one line break (the format's: import takes it off again). A body that would
swallow the next heading (it ends inside an open fence, HTML comment or HTML block) gets the least that closes it
and a mark saying how many characters that was, `<!-- closed by the export: 4 characters above -->`, invisible
in a Markdown viewer; import removes both, so a round trip gives back every date and body exactly.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

from lab_notes.journal_parse import BLOCKS
from lab_notes.journal_text import EXPORT_MARK, LINE_ENDS, JournalError, figure_references, parse_date, \
    without_export_marks
from lab_notes.records import Note

# lab_notes.drafts.DRAFT_TAG, written again: importing it would close a circle (drafts -> notes -> journal -> here)
DRAFT_TAG = "draft"

# What may close an open HTML block, shortest first: a blank line (<div> and other tags), then each kind's end.
HTML_CLOSERS = ["\n", ">\n", "?>\n", "-->\n", "]]>\n", "</pre>\n", "</style>\n", "</script>\n", "</textarea>\n"]


def _line_count(text: str) -> int:
    return len(LINE_ENDS.split(text)) - 1


def _heading_follows(text: str) -> bool:
    """Whether a heading written right after `text` is a top-level heading of its own."""
    if not text.endswith(("\n", "\r")):
        return False
    tokens = BLOCKS.parse(text + "# 2000.01.01\n")
    return (len(tokens) >= 3 and tokens[-3].type == "heading_open" and tokens[-3].level == 0
            and tokens[-3].map is not None and tokens[-3].map[0] == _line_count(text))


def _last_block(body: str) -> tuple[str, str]:
    """The body's last top-level block, from its first line to the end (only it can be left open), and its
    fence markup when it is a fence."""
    tokens = [t for t in BLOCKS.parse(body) if t.level == 0 and t.map is not None and t.nesting >= 0]
    if not tokens:
        return body, ""
    last = tokens[-1]
    tail = "".join(LINE_ENDS.split(body)[last.map[0] if last.map else 0:])
    return tail, (last.markup if last.type == "fence" else "")


def closing(body: str, separator: str) -> str:
    """What to write after `body` (before `separator` and the next heading) so that the heading starts the next
    entry and import gives back `body` exactly: usually nothing."""
    ends_with_mark = without_export_marks(body) != body  # a body that happens to end like a mark: mark it too
    tail, fence = _last_block(body)
    if not ends_with_mark and _heading_follows(tail + separator):
        return ""
    newline = "" if body.endswith(("\n", "\r")) else "\n"
    for closer in ["", *([fence + "\n"] if fence else HTML_CLOSERS)]:
        fix = newline + closer
        added = fix + EXPORT_MARK.format(len(fix))
        if _heading_follows(tail + added + separator):
            return added
    raise JournalError(f"an entry's end could not be closed for export: {body[-60:]!r}")  # no known body does this


def _safe_name(name: str, used: set[str], index: int) -> str:
    """A plain file name inside pic/: no folders, no hidden files, no clashes."""
    base = PurePosixPath(name.replace("\\", "/")).name
    if not base or base.startswith(".") or not re.fullmatch(r"[\w\-. ()\u0080-\uffff]+", base):
        base = f"figure-{index}.png"
    candidate, n = base, 1
    while candidate in used:
        stem, dot, suffix = base.rpartition(".")
        candidate = f"{stem}-{n}.{suffix}" if dot else f"{base}-{n}"
        n += 1
    return candidate


def dated_heading_levels(body: str) -> set[int]:
    """Levels of the top-level dated headings inside a body."""
    tokens = BLOCKS.parse(body)
    return {int(t.tag[1:]) for i, t in enumerate(tokens) if t.type == "heading_open" and t.level == 0
            and parse_date(tokens[i + 1].content)}


def entry_level(bodies: Iterable[str]) -> int:
    """The heading level an export gives its entries: ### as in the original journal, or higher-ranked when a
    body holds a dated heading of its own at ### or above (it must stay prose when the file is read back)."""
    inner = min((level for body in bodies for level in dated_heading_levels(body)), default=7)
    return max(1, min(3, inner - 1))


def write_journal(notes: Sequence[Note], out_dir: Path, *, replace: bool = False,
                  include_drafts: bool = False) -> Path:
    """Write journal.md and pic/ in the original format: undated notes first, then by date. A folder that holds
    anything already is refused, unless `replace`: then its journal.md and pic/ are replaced (no stale pictures).
    Drafts still waiting (tagged `draft`) are left out unless `include_drafts`: a journal holds what a person
    accepted; accepted drafts are ordinary entries."""
    if not include_drafts:
        notes = [note for note in notes if DRAFT_TAG not in note.tags]
    if out_dir.exists() and any(out_dir.iterdir()):
        if not replace:
            raise JournalError(f"{out_dir} is not empty: export into an empty folder, or ask to replace its "
                               "journal.md and pic/")
        (out_dir / "journal.md").unlink(missing_ok=True)
        shutil.rmtree(out_dir / "pic", ignore_errors=True)
    pic = out_dir / "pic"
    pic.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    written: dict[str, bytes] = {}
    parts: list[str] = []
    ordered = sorted(notes, key=lambda n: (n.entry_date is not None, n.entry_date or dt.date.min, n.id))
    marks = "#" * entry_level(n.body for n in ordered)
    for index, note in enumerate(ordered):
        body = note.body
        if note.entry_date is not None:
            parts.append(f"{marks} {note.entry_date:%Y.%m.%d}\n")
            if note.title and note.title not in body:
                body = f"\n**{note.title}**\n\n" + body.lstrip("\n")
        referenced = {ref.name for ref in figure_references(note.body)}
        for figure in note.figures:
            if figure.image is None:
                continue  # a missing figure keeps its reference in the body; there is no file to write
            name = figure.name if figure.name in referenced else _safe_name(figure.name, used, len(written))
            if name in written and written[name] != figure.image:
                name = _safe_name(name, used, len(written))
            used.add(name)
            written[name] = figure.image
            (pic / name).write_bytes(figure.image)
            if name not in referenced:
                body = body.rstrip("\n") + f"\n\n![{figure.caption}](./pic/{name})\n\n"
        if index < len(ordered) - 1:
            separator = "\n" if note.entry_date is not None else ""  # the text before the first heading: none
            body += closing(body, separator) + separator
        parts.append(body)
    journal = out_dir / "journal.md"
    journal.write_text("".join(parts), encoding="utf-8")
    return journal
