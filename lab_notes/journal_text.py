"""The journal's shared pieces, below the reader (lab_notes.journal), the writer (journal_export) and the
renderer (journal_render), which all import them from here: dates, figures named in a body, and the export's mark."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Sequence

import numpy as np

from lab_notes.journal_parse import LINKABLE, PARSER, SHORTCUT

DATE_FORMS = (re.compile(r"^(?P<y>\d{4})(?P<sep>[./-])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})$"),
              re.compile(r"^(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*日?$"))
IMG_TAG = re.compile(r"<img\b[^<>]*>", re.IGNORECASE)  # [^<>]: each try stops at the next '<', so linear
LINE_ENDS = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")
WEB_ADDRESS = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
# What export adds after a body that ends inside something open (a fence, a comment, an HTML block), so the next
# heading still starts an entry; import removes it again, with the N characters of closers above it.
EXPORT_MARK = "<!-- closed by the export: {} characters above -->\n"
EXPORT_MARK_FORM = re.compile(r"<!-- closed by the export: (\d{1,9}) characters above -->\n")


class JournalError(ValueError):
    """A journal file (or its picture zip) that cannot be imported; the message names the file and the problem."""


@dataclass(frozen=True)
class FigureRef:
    """A figure as a body names it: where it points and its alt text."""

    src: str
    alt: str

    @property
    def name(self) -> str:
        return PurePosixPath(self.src.replace("\\", "/")).name or self.src

    @property
    def remote(self) -> bool:
        return bool(WEB_ADDRESS.match(self.src))


class _ImgAttributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[FigureRef] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        src = values.get("src")
        if tag == "img" and src:
            self.found.append(FigureRef(src.strip(), values.get("alt") or ""))


def html_figures(fragment: str) -> list[FigureRef]:
    """The <img> tags of a piece of raw HTML, in order."""
    found = []
    for tag in IMG_TAG.findall(fragment):
        parser = _ImgAttributes()
        parser.feed(tag)
        parser.close()
        found += parser.found
    return found


def _alt_text(token: Any) -> str:
    return "".join(child.content for child in token.children or [] if child.type in ("text", "code_inline"))


def _tokens_figures(tokens: Sequence[Any]) -> list[FigureRef]:
    found = []
    for token in tokens:
        if token.type == "image":
            found.append(FigureRef(str(token.attrGet("src") or ""), _alt_text(token)))
        elif token.type in ("html_inline", "html_block"):
            found += html_figures(token.content)
        if token.children:
            found += _tokens_figures(token.children)
    return found


def figure_references(body: str, env: dict[str, Any] | None = None) -> list[FigureRef]:
    """Every figure a body shows, in order: inline and reference-style images and HTML <img> tags; none inside
    code. `env` may carry link reference definitions from the rest of the file."""
    references = bool((env or {}).get("references"))
    if "![" not in body and "<img" not in body.lower():
        return []  # an image needs `![` written out, an HTML figure `<img`: nothing can be a figure
    if ("<img" not in body.lower() and not LINKABLE.search(body)
            and not (references and "![" in body and SHORTCUT.search(body))):
        return []  # nothing could be a figure: skip the inline parse
    return _tokens_figures(PARSER.parse(body, dict(env or {})))


def parse_date(text: str) -> tuple[int, int, int] | None:
    for form in DATE_FORMS:
        found = form.match(text.strip())
        if found:
            return int(found["y"]), int(found["m"]), int(found["d"])
    return None


def without_export_marks(body: str) -> str:
    """`body` without what an export added to close it (see lab_notes.journal_export): its mark and closers."""
    start = body.rfind("<!-- closed by the export: ", max(0, len(body) - 80))
    mark = EXPORT_MARK_FORM.fullmatch(body, start) if start >= 0 else None
    if mark is None or int(mark[1]) > start:
        return body
    return body[:start - int(mark[1])]


def line_starts(text: str) -> Any:
    """Where each line of `text` starts, as CommonMark counts lines (\n, \r\n and \r end one), and then
    len(text): a numpy array, so `text[starts[a]:starts[b]]` is lines a to b (LINE_ENDS.split's pieces, joined)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lone_return = (codes == 13) & np.append(codes[1:] != 10, True)
    return np.concatenate(([0], np.flatnonzero((codes == 10) | lone_return) + 1, [len(codes)]))
