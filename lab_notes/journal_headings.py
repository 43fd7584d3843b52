"""Where a journal's entries start: its top-level headings that hold a date, found by one linear scan where the
scan can be sure, by markdown-it's block parse (BLOCKS) where it cannot.

The block parse builds tokens for every block: ordinary Markdown packed tight (`- a` on every line) cost an import
up to 8 times prose of the same length. Only a heading can start an entry, and a heading written as export and
the original journal write them, `### 2022.12.08` at the start of a line, is a top-level heading whatever came
before it, unless an open fence or HTML block above swallows it: a line at no indent that is not a paragraph's
continuation closes every list and block quote, ends indented code, and a heading interrupts a paragraph. So the
scan is exact when the text holds no line that could open such a block before the heading (a fence, an HTML
block of CommonMark's kinds 1-5 anywhere above, or any HTML line in the lines right above it), no dated heading
indented by 1-3 spaces (it may belong to a list item) and no underline under a line that ends like a date (a
setext heading). Otherwise, and when the file's link reference definitions are needed for its figures, the full
parse answers, as before. tests/lab_notes/test_journal_headings.py checks the two agree on generated journals.
"""

from __future__ import annotations

import re
from typing import Any

from markdown_it.common.utils import mdTrim

from lab_notes.journal_parse import BLOCKS
from lab_notes.journal_text import parse_date

Heading = tuple[int, int, int, str]  # level, first line, line after, text

NEWLINES = re.compile(r"\r\n?")
ATX_DATED = re.compile(r"^(#{1,6})([ \t][^\S\n]*\d{4}[^\n]*)$", re.MULTILINE)  # at no indent, text from a year
UNSURE = re.compile(r"^ {1,3}#{1,6}[ \t][^\S\n]*\d{4}"  # a dated heading that may sit in a list item
                    r"|[\d日][^\S\n]*\n {0,3}(?:=+|-+)[ \t]*$",  # a setext underline under a date's last line
                    re.MULTILINE)
OPENS_ACROSS_BLANKS = re.compile(r"^ {0,3}(?:```|~~~|<[?!]|<(?i:script|pre|style|textarea))", re.MULTILINE)
HTML_LINE = re.compile(r"^ {0,3}<", re.MULTILINE)
BLANK_LINE = re.compile(r"\n[ \t]*\n")


def _atx_text(rest: str) -> str:
    """A heading's text as markdown-it reads it from what follows its opening #s: closing #s after a space cut."""
    rest = rest.rstrip(" \t")
    bare = rest.rstrip("#")
    if len(bare) < len(rest) and bare and bare[-1] in " \t":
        rest = bare
    return mdTrim(rest)


def _scanned(text: str) -> list[Heading] | None:
    """The top-level dated headings of normalized `text`, or None where the scan cannot be sure."""
    if UNSURE.search(text):
        return None
    opener = OPENS_ACROSS_BLANKS.search(text)
    headings: list[Heading] = []
    line, counted_to, previous_end = 0, 0, 0
    for found in ATX_DATED.finditer(text):
        if opener is not None and opener.start() < found.start():
            return None
        above = text[previous_end:found.start()]
        last_html = None
        for last_html in HTML_LINE.finditer(above):
            pass
        if last_html is not None and not BLANK_LINE.search(above, last_html.start()):
            return None  # an HTML block there may run on into this line
        line += text.count("\n", counted_to, found.start())
        counted_to = found.start()
        title = _atx_text(found.group(2))
        if parse_date(title) is not None:
            headings.append((len(found.group(1)), line, line + 1, title))
        previous_end = found.end()
    return headings


def _parsed(content: str, env: dict[str, Any]) -> list[Heading]:
    tokens = BLOCKS.parse(content, env)
    headings = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.level == 0 and token.map is not None:
            title = tokens[index + 1].content
            if parse_date(title) is not None:
                headings.append((int(token.tag[1:]), token.map[0], token.map[1], title))
    return headings


def dated_headings(content: str) -> tuple[list[Heading], dict[str, Any]]:
    """(level, first line, line after, text) of each top-level heading whose text is a date, in order, and the
    file's link reference definitions as markdown-it's env (left empty where no figure could use one: a file with
    no `![`)."""
    env: dict[str, Any] = {}
    if "]:" in content and "![" in content:
        return _parsed(content, env), env
    scanned = _scanned(NEWLINES.sub("\n", content))
    return (scanned, env) if scanned is not None else (_parsed(content, env), env)
