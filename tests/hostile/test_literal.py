"""app/literal.py against any text: Markdown built by `literal` or `literal_code` renders to exactly the typed
characters (line breaks kept, blank lines and indentation dropped) and to no tag but paragraphs, breaks and code;
`plotly_literal` leaves no tag and unescapes to the text."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from app.literal import literal, literal_code, plotly_literal
from tests.hostile.names import NAMES, rendered, shown_text

# Pieces that start Markdown, HTML, entities, maths, directives, tables and blocks, and plain words between them.
PIECES = st.sampled_from(["a", "b1", " ", "\t", "\n", "_", "*", "`", "``", "[", "]", "(", ")", "<", ">", "!", "&",
                          "#", ";", ":", "$", "~", "|", "=", "-", "+", ".", "\\", "/", '"', "'", "1. ", "- ",
                          "# ", "> ", "    ", "&lt;", "&#60;", "http://127.0.0.1:9/x.png", "www.example.com",
                          ":red[", ":material/home:", "<img src=x>", "<script>", "![](", "x_y", "\r\n", "\x00",
                          *NAMES])
TEXTS = st.lists(PIECES, max_size=24).map("".join)


def tags(markdown: str) -> set[str]:
    return set(re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", rendered(markdown)))


def typed_lines(text: str) -> str:
    """The text a reader should see: its non-blank lines, control characters as spaces, spaces collapsed (as a
    browser shows them)."""
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text.replace("\r\n", "\n"))
    return " ".join(" ".join(line.split()) for line in text.split("\n") if line.strip(" \t"))


@settings(max_examples=800, deadline=None)
@given(TEXTS, st.sampled_from(["", "Run 3 — ", "**Lint** · "]))
def test_literal_markdown_renders_to_the_typed_characters_and_nothing_else(text, before):
    markdown = before + literal(text)
    assert tags(markdown) <= {"p", "br", "strong"}, (text, markdown, rendered(markdown))
    assert shown_text(markdown) == " ".join((shown_text(before) + " " + typed_lines(text)).split()), (text, markdown)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_a_literal_code_span_holds_the_typed_characters(text):
    markdown = f"commit {literal_code(text)} on"
    assert tags(markdown) <= {"p", "code"}, (text, markdown)
    inside = re.search(r"<code>(.*)</code>", rendered(markdown), re.DOTALL)
    expected = re.sub(r"[\x00-\x08\x0a-\x1f\x7f]", " ", text)  # a span is one line: each break a space
    assert inside and html.unescape(inside.group(1)).strip() == expected.strip(), (text, markdown)


@settings(max_examples=400, deadline=None)
@given(TEXTS)
def test_plotly_text_has_no_tag_and_reads_as_typed(text):
    shown = plotly_literal(text)
    assert "<" not in shown and ">" not in shown and html.unescape(shown) == text
