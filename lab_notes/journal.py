"""The Markdown journal format of the user's original journal, in and out.

    ### 2022.12.08            <- one entry per dated heading
    prose, kept byte for byte
    <img src="./pic/NAME.png" alt="…" style="zoom: 33%;" />   or   ![alt](./pic/NAME.png)

Import reads figures only from inside the journal's folder (or the given picture folder); a figure that is
missing, unreadable or points outside becomes a placeholder that keeps its name and says why. Export writes
`journal.md` and `pic/` inside the folder it is given and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

from lab_notes.records import Figure, Note
from lab_notes.images import MAX_IMAGE_BYTES, BadImage, check_image

HEADING = re.compile(r"^###[ \t]+(?P<text>.*?)[ \t]*\r?$")
DATE = re.compile(r"^(?P<y>\d{4})\.(?P<m>\d{1,2})\.(?P<d>\d{1,2})$")
IMG_TAG = re.compile(r"""<img\s[^>]*?src\s*=\s*["'](?P<src>[^"']+)["'][^>]*>""", re.IGNORECASE)
ALT_ATTR = re.compile(r"""alt\s*=\s*["'](?P<alt>[^"']*)["']""", re.IGNORECASE)
MD_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src><[^>]+>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")


class JournalError(ValueError):
    """A journal file that cannot be imported; the message names the file and line."""


@dataclass(frozen=True)
class JournalEntry:
    entry_date: dt.date | None  # None: text before the first dated heading
    body: str
    figures: list[Figure]


def figure_references(body: str) -> list[tuple[str, str]]:
    """(src, alt) of every figure in a body, in order of appearance."""
    found = []
    for match in IMG_TAG.finditer(body):
        alt = ALT_ATTR.search(match.group(0))
        found.append((match.start(), match.group("src"), alt.group("alt") if alt else ""))
    for match in MD_IMAGE.finditer(body):
        found.append((match.start(), match.group("src").strip("<>"), match.group("alt")))
    return [(src, alt) for _, src, alt in sorted(found)]


def _load_figure(src: str, alt: str, journal_dir: Path, pic_dir: Path | None) -> Figure:
    name = PurePosixPath(src.replace("\\", "/")).name or src
    if re.match(r"^[a-z][a-z0-9+.-]*:", src, re.IGNORECASE):
        return Figure(name=src, caption=alt, missing="a web or data address: not fetched")
    relative = PurePosixPath(src.replace("\\", "/"))
    if relative.is_absolute() or ".." in relative.parts:
        return Figure(name=name, caption=alt, missing=f"'{src}' points outside the journal folder: not read")
    candidate = (pic_dir / name) if pic_dir else (journal_dir / relative)
    root = (pic_dir or journal_dir).resolve()
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


def parse_journal(md_path: Path, pic_dir: Path | None = None) -> list[JournalEntry]:
    """Entries of a journal file, or JournalError. Nothing is written here."""
    try:
        raw = md_path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{md_path}: cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in raw:
        raise JournalError(f"{md_path}: binary data (NUL bytes), not a Markdown journal")
    try:
        content = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise JournalError(f"{md_path}: not UTF-8 text (byte {exc.start} is invalid)") from exc
    journal_dir = md_path.parent
    entries: list[tuple[dt.date | None, list[str]]] = [(None, [])]
    for number, line in enumerate(content.splitlines(keepends=True), start=1):
        heading = HEADING.match(line.rstrip("\n"))
        date_text = heading.group("text") if heading else ""
        parts = DATE.match(date_text)
        if parts:
            try:
                day = dt.date(int(parts["y"]), int(parts["m"]), int(parts["d"]))
            except ValueError:
                raise JournalError(f"{md_path.name}, line {number}: '### {date_text}' is not a real date "
                                   "(expected ### YYYY.MM.DD)") from None
            entries.append((day, []))
        else:
            entries[-1][1].append(line)
    if len(entries) == 1:
        raise JournalError(f"{md_path.name}: no '### YYYY.MM.DD' date headings, so no dated entries to import")
    result = []
    for day, lines in entries:
        body = "".join(lines)
        if day is None and not body.strip():
            continue  # nothing before the first heading
        figures = [_load_figure(src, alt, journal_dir, pic_dir) for src, alt in figure_references(body)]
        result.append(JournalEntry(day, body, figures))
    return result


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


def write_journal(notes: Sequence[Note], out_dir: Path) -> Path:
    """Write journal.md and pic/ in the original format: undated notes first, then by date."""
    pic = out_dir / "pic"
    pic.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    written: dict[str, bytes] = {}
    parts: list[str] = []
    ordered = sorted(notes, key=lambda n: (n.entry_date is not None, n.entry_date or dt.date.min, n.id))
    for index, note in enumerate(ordered):
        body = note.body
        if note.entry_date is not None:
            parts.append(f"### {note.entry_date:%Y.%m.%d}\n")
            if note.title and note.title not in body:
                body = f"\n**{note.title}**\n\n" + body.lstrip("\n")
        referenced = {PurePosixPath(src.replace("\\", "/")).name for src, _ in figure_references(note.body)}
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
        if not body.endswith("\n") and index < len(ordered) - 1:
            body += "\n\n"
        parts.append(body)
    journal = out_dir / "journal.md"
    journal.write_text("".join(parts), encoding="utf-8")
    return journal
