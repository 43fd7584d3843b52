"""The Markdown journal format of the user's original journal, in and out, read by a CommonMark parser
(markdown-it-py), linear in its input.

    ### 2022.12.08            <- one entry per dated heading (CommonMark's headings only: not in code, not quoted)
    prose, kept byte for byte
    <img src="./pic/NAME.png" alt="…" style="zoom: 33%;" />   or   ![alt](./pic/NAME.png)   or   ![alt][ref]

Dates in the common forms (2022.12.08, 2022-12-08, 2022/12/08, 2022年12月8日) at the heading level the file uses
for them. Import reads figures only from inside the journal's folder, the given picture folder, or pictures
handed over in memory (`pictures_from_zip`, capped); a figure that is missing, unreadable or points outside becomes
a placeholder that keeps its name and says why; a web address is never fetched. Export writes `journal.md` and
`pic/` inside the folder it is given and nowhere else, and refuses a folder that already holds something unless
asked to replace it.

The parsers and their budget live in journal_parse, the pieces all share in journal_text, finding entries in
journal_headings, writing in journal_export, display in journal_render (its budget in journal_budget); each
imports only downward.
An import holds at most LAB_JOURNAL_IMPORT_MAX_ENTRIES entries (5,000), refused whole past it.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from lab_notes.images import MAX_IMAGE_BYTES, BadImage, check_image
from lab_notes.journal_export import dated_heading_levels, entry_level, write_journal  # noqa: F401  (re-exported)
from lab_notes.journal_headings import dated_headings
from lab_notes.journal_parse import BLOCKS, LINKABLE, PARSER, SHORTCUT, _parser  # noqa: F401  (re-exported)
from lab_notes.journal_render import body_segments  # noqa: F401  (re-exported)
from lab_notes.journal_text import (DATE_FORMS, EXPORT_MARK, EXPORT_MARK_FORM, IMG_TAG, LINE_ENDS,  # noqa: F401
                                    WEB_ADDRESS, FigureRef, JournalError, _alt_text, figure_references, html_figures,
                                    line_starts, parse_date, without_export_marks)
from lab_notes.records import Figure

MAX_NOTE_CHARS = 2_000_000
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL_BYTES = 200 * 1024 * 1024
MAX_ZIP_RATIO = 50  # uncompressed / compressed, per member: a picture compresses far less than a bomb
MAX_IMPORT_ENTRIES = 5000
MAX_IMPORT_ENTRIES_VARIABLE = "LAB_JOURNAL_IMPORT_MAX_ENTRIES"


@dataclass(frozen=True)
class JournalEntry:
    entry_date: dt.date | None  # None: text before the first dated heading
    body: str
    figures: list[Figure]


def split_entries(content: str, source: str = "journal") -> tuple[list[tuple[dt.date | None, str]], dict]:
    """(date, body) of each entry, the text before the first dated heading first (date None), and the file's
    link reference definitions. Entries start at the top-level headings that hold a date, at the highest-ranked
    level the file uses for dates (a deeper dated heading stays in its entry's prose); bodies are the source
    lines between, byte for byte."""
    headings, env = dated_headings(content)
    dated = []
    for level, first, after, text in headings:
        parts = parse_date(text)
        if parts is None:
            continue  # dated_headings gives only headings whose text reads as a date
        try:
            day = dt.date(*parts)
        except ValueError:
            raise JournalError(f"{source}, line {first + 1}: heading '{text.strip()[:40]}' is not a real "
                               "date") from None
        dated.append((level, first, after, day))
    if not dated:
        raise JournalError(f"{source}: no dated headings (such as ### 2022.12.08), so no dated entries to import")
    level = min(level for level, *_ in dated)  # the file's entries: its highest-ranked dated headings
    starts = [(first, after, day) for lv, first, after, day in dated if lv == level]
    offsets = line_starts(content)  # the lines CommonMark counts (\n, \r\n, \r), not str.splitlines's
    lines = len(offsets) - 1
    entries: list[tuple[dt.date | None, str]] = [(None, without_export_marks(content[:offsets[starts[0][0]]]))]
    for (first, after, day), following in zip(starts, [*starts[1:], (lines, None, None)]):
        body = content[offsets[after]:offsets[following[0]]]
        if following[1] is not None:  # the line break before the next heading is the format's, not the body's
            body = without_export_marks(body.removesuffix("\n"))
        entries.append((day, body))
    return entries, env


def max_import_entries() -> int:
    """The most entries one journal import may hold: LAB_JOURNAL_IMPORT_MAX_ENTRIES, else 5,000."""
    value = os.environ.get(MAX_IMPORT_ENTRIES_VARIABLE, "").strip()
    if not value:
        return MAX_IMPORT_ENTRIES
    if not value.isdigit() or int(value) < 1:
        raise JournalError(f"{MAX_IMPORT_ENTRIES_VARIABLE}={value!r} is not a positive whole number of entries")
    return int(value)


def _load_figure(ref: FigureRef, journal_dir: Path | None, pic_dir: Path | None,
                 pictures: Mapping[str, bytes] | None) -> Figure:
    name, src, alt = ref.name, ref.src, ref.alt
    if ref.remote:
        return Figure(name=src[:500], caption=alt, missing="a web or data address: not fetched")
    relative = PurePosixPath(src.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        return Figure(name=name, caption=alt, missing=f"'{src}' points outside the journal folder: not read")
    if pictures is not None:
        if name not in pictures:
            return Figure(name=name, caption=alt, missing="file not found")
        try:
            return Figure(name=name, caption=alt, image=check_image(pictures[name], name))
        except BadImage as exc:
            return Figure(name=name, caption=alt, missing=str(exc))
    folder = pic_dir or journal_dir
    if folder is None:  # text handed over with neither pictures nor a folder: nothing to read from
        return Figure(name=name, caption=alt, missing="file not found")
    candidate = folder / (name if pic_dir else relative)
    root = folder.resolve()
    try:
        resolved = candidate.resolve()
        if not resolved.is_relative_to(root):  # e.g. a symbolic link leading out of the folder
            return Figure(name=name, caption=alt, missing=f"'{src}' leads outside the journal folder: not read")
        if not resolved.is_file():
            return Figure(name=name, caption=alt, missing="file not found")
        if resolved.stat().st_size > MAX_IMAGE_BYTES:
            return Figure(name=name, caption=alt, missing="file larger than the image cap")
        return Figure(name=name, caption=alt, image=check_image(resolved.read_bytes(), name))
    except BadImage as exc:
        return Figure(name=name, caption=alt, missing=str(exc))
    except OSError as exc:
        return Figure(name=name, caption=alt, missing=f"could not be read ({exc.strerror or exc})")


def read_journal_text(raw: bytes, source: str) -> str:
    if b"\x00" in raw:
        raise JournalError(f"{source}: binary data (NUL bytes), not a Markdown journal")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise JournalError(f"{source}: not UTF-8 text (byte {exc.start} is invalid)") from exc


def parse_journal_text(content: str, source: str, *, journal_dir: Path | None = None, pic_dir: Path | None = None,
                       pictures: Mapping[str, bytes] | None = None) -> list[JournalEntry]:
    """Entries of a journal's text, or JournalError; figures from `pictures` (by file name) when given, else from
    the picture folder, else from the journal's folder. Nothing is written here."""
    entries, env = split_entries(content, source)
    cap = max_import_entries()
    if len(entries) - 1 > cap:  # the first is the text before the first heading
        raise JournalError(f"{source}: {len(entries) - 1:,} dated entries, over the cap of {cap:,} entries one "
                           f"import may hold ({MAX_IMPORT_ENTRIES_VARIABLE}): nothing imported")
    result = []
    for day, body in entries:
        if day is None and not body.strip():
            continue  # nothing before the first heading
        if len(body) > MAX_NOTE_CHARS:
            raise JournalError(f"{source}: the entry of {day or 'the preamble'} has {len(body):,} characters, over "
                               f"the {MAX_NOTE_CHARS:,}-character cap of a note")
        figures = [_load_figure(ref, journal_dir, pic_dir, pictures) for ref in figure_references(body, env)]
        result.append(JournalEntry(day, body, figures))
    return result


def pictures_from_zip(data: bytes, wanted: set[str], source: str = "picture zip") -> dict[str, bytes]:
    """The pictures named in `wanted` (file names) from a zip, read into memory, every member checked first:
    count, names, encryption, compression method, sizes and ratio. Any problem is a JournalError and nothing is
    kept; members the journal does not reference are never decompressed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise JournalError(f"{source}: not a zip archive ({exc})") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise JournalError(f"{source}: {len(members):,} members, over the cap of {MAX_ZIP_MEMBERS:,}")
        chosen: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for member in members:
            path = PurePosixPath(member.filename.replace("\\", "/"))
            if path.is_absolute() or ".." in path.parts:
                raise JournalError(f"{source}: member '{member.filename}' points outside the archive")
            if member.is_dir() or path.name not in wanted:
                continue
            if member.flag_bits & 0x1:
                raise JournalError(f"{source}: member '{member.filename}' is encrypted")
            if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise JournalError(f"{source}: member '{member.filename}' uses compression method "
                                   f"{member.compress_type}, not stored or deflate")
            if member.file_size > MAX_IMAGE_BYTES:
                raise JournalError(f"{source}: member '{member.filename}' is {member.file_size / 1e6:.1f} MB, over "
                                   f"the {MAX_IMAGE_BYTES / 1e6:.0f} MB image cap")
            if member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1):
                raise JournalError(f"{source}: member '{member.filename}' expands {member.file_size:,} bytes from "
                                   f"{member.compress_size:,}, over the {MAX_ZIP_RATIO}:1 cap (a zip bomb?)")
            total += member.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                raise JournalError(f"{source}: the referenced pictures add up to over "
                                   f"{MAX_ZIP_TOTAL_BYTES / 2**20:.0f} MB")
            chosen.setdefault(path.name, member)
        pictures = {}
        for name, member in chosen.items():
            try:
                with archive.open(member) as stream:
                    content = stream.read(member.file_size + 1)  # never more than its header promised
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
                raise JournalError(f"{source}: member '{member.filename}' cannot be read ({exc})") from exc
            if len(content) > member.file_size:
                raise JournalError(f"{source}: member '{member.filename}' is larger than its header says")
            pictures[name] = content
    return pictures


def wanted_pictures(content: str) -> set[str]:
    """File names of the local figures a journal's text references."""
    entries, env = split_entries(content)
    return {ref.name for _, body in entries for ref in figure_references(body, env) if not ref.remote}


def parse_journal(md_path: Path, pic_dir: Path | None = None) -> list[JournalEntry]:
    """Entries of a journal file, or JournalError. Nothing is written here."""
    try:
        raw = md_path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{md_path}: cannot be read ({exc.strerror or exc})") from exc
    return parse_journal_text(read_journal_text(raw, md_path.name), md_path.name, journal_dir=md_path.parent,
                              pic_dir=pic_dir)


__all__ = ["JournalError", "JournalEntry", "FigureRef", "body_segments", "dated_heading_levels", "entry_level",
           "figure_references", "parse_date", "parse_journal", "parse_journal_text", "pictures_from_zip",
           "read_journal_text", "split_entries", "wanted_pictures", "write_journal"]
