"""The journal's renderer (lab_notes.journal_render) and export marks, fast: what the HTML a page gets may hold,
the parser's budget, and a round trip of bodies that end inside something open."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab_notes import Note, journal_budget, journal_parse
from lab_notes.journal import FigureRef, parse_journal_text, split_entries, write_journal
from lab_notes.journal_render import PREVIEW_CHARS, body_segments, preview_segments
from tests.hostile.test_journal_fuzz import body as fuzz_body

REAL = Path(__file__).with_name("original-journal.md")


def html_of(body: str) -> str:
    return "".join(s for s in body_segments(body) if isinstance(s, str))


@pytest.mark.parametrize("blank", ["   ", "\t", " \t ", ""])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_fenced_blank_line_leaves_no_line_a_markdown_reader_could_reread(blank, newline):
    body = newline.join(["```", "x = 1", blank, "![](http://example.org/x.png)", "```", "", "after ![w](https://e.org/y.png)"])
    segments = body_segments(body)
    rendered = "".join(s for s in segments if isinstance(s, str))
    assert "\n" not in rendered and "\r" not in rendered  # one line: one raw-HTML block to the page, nothing after it
    assert "<img" not in rendered.lower() and "src=" not in rendered.lower()
    assert "<pre><code>" in rendered and "![](http://example.org/x.png)" in rendered  # the code shown as text
    assert [s for s in segments if isinstance(s, FigureRef)] == [FigureRef("https://e.org/y.png", "w")]


@pytest.mark.parametrize("body", ["![a](http://x.org/a.png)", "<img src='http://x.org/a.png'>", "![r][r]\n\n[r]: //x.org",
                                  "<p><img src=http://x.org/a.png></p>", "<picture><source srcset='http://x.org'>"])
def test_no_rendered_html_holds_an_address_a_browser_would_fetch(body):
    rendered = html_of(body).lower()
    assert "<img" not in rendered and "<source" not in rendered and "src=" not in rendered.replace("&quot;", "")


def test_the_real_journal_renders_as_it_would_without_a_budget(monkeypatch):
    entries, _ = split_entries(REAL.read_text(encoding="utf-8"))
    within = [body_segments(body) for _, body in entries]
    monkeypatch.setattr(journal_parse, "LINK_BUDGET", 10**9)
    monkeypatch.setattr(journal_parse, "EMPHASIS_BUDGET", 10**9)
    assert within == [body_segments(body) for _, body in entries]


def test_a_block_over_budget_keeps_its_delimiters_as_text_and_one_within_is_parsed():
    assert '<a href="x">' in html_of("see [the run](x) and **this**")
    over = html_of("[" * 5000 + "](x)")
    assert "<a " not in over and over.count("[") == 5000
    stars = html_of("**a" * 5000)
    assert "<strong>" not in stars and stars.count("*") == 10000


def test_the_preview_renders_the_first_part_and_says_how_much_more():
    body = "word " * (PREVIEW_CHARS // 5 + 3000)
    segments, left_out = preview_segments(body)
    assert left_out == len(body) - PREVIEW_CHARS == 15000
    assert segments == body_segments(body[:PREVIEW_CHARS])
    assert preview_segments("short") == (body_segments("short"), 0)


ISSUE_28 = [(dt.date(2022, 12, 8), "some code:\n\n```python\nx = 1\n"), (dt.date(2022, 12, 14), "the fix"),
            (dt.date(2023, 1, 12), "<!-- a comment left open"), (dt.date(2023, 2, 1), "last words")]


def round_trip(bodies: list[tuple[dt.date | None, str]], folder: Path) -> tuple[str, list[tuple]]:
    notes = [Note(i, day, "", body, [], [], []) for i, (day, body) in enumerate(bodies)]
    text = write_journal(notes, folder).read_bytes().decode("utf-8")  # bytes: read_text would turn \r into \n
    return text, [(e.entry_date, e.body) for e in parse_journal_text(text, "journal.md", pictures={})]


def test_the_issues_four_notes_survive_export_and_import_exactly(tmp_path):
    text, again = round_trip(ISSUE_28, tmp_path / "out")
    assert again == ISSUE_28
    # the least that closes each: the fence's own markup, or the mark alone (its --> ends the comment)
    assert "x = 1\n```\n<!-- closed by the export: 4 characters above -->\n\n### 2022.12.14\nthe fix\n### " in text
    assert "left open\n<!-- closed by the export: 1 characters above -->\n\n### 2023.02.01\nlast words" in text


@pytest.mark.parametrize("body", [
    "````\n```\nstill code", "~~~\ncode\n", "<pre>\nraw\n\nstill raw", "<div>\nopen", "<script>\nx", "<style>",
    "<textarea>\n", "<?php echo", "<![CDATA[ x", "<!DOCTYPE", "text\n===", "### 2024.01.01", "ends\r",
    "looks like\n<!-- closed by the export: 3 characters above -->\n", "", "\n\n"])
def test_any_ending_survives_between_two_entries(tmp_path, body):
    bodies = [(None, "before"), (dt.date(2022, 1, 1), body), (dt.date(2022, 1, 2), "next")]
    _, again = round_trip(bodies, tmp_path / "out")
    assert again == bodies


def as_json(segments: list) -> list:
    return [s if isinstance(s, str) else {"src": s.src, "alt": s.alt} for s in segments]


def test_the_original_journal_renders_exactly_as_before_the_render_budget():
    """original-journal-segments.json: each entry's segments as main rendered them before the budget (commit
    722d304, computed then and stored)."""
    entries, _ = split_entries(REAL.read_text(encoding="utf-8"))
    expected = json.loads(REAL.with_name("original-journal-segments.json").read_text(encoding="utf-8"))
    assert [as_json(body_segments(body)) for _, body in entries] == expected


ORDINARY = ["## Setup\n\n- lr 0.1\n- batch 32\n  - warmup 5\n\n1. train\n2. eval\n\n> note: *seed* 3, **ViT-1**\n",
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nx = 1\n```\n\n[run](./run/3) `code` <b>bold</b>\n",
            "title\n=====\n\nsub\n---\n\n***\n\n    indented\n\n[r]: ./pic/x.png\n\n![ref][r] ![in](./pic/y.png)\n"]


@pytest.mark.parametrize("body", ORDINARY + ["- item\n" * 250, "line\n" * 600, "a\n\n" * 300])
def test_a_body_within_the_budget_renders_as_it_would_without_one(monkeypatch, body):
    within = body_segments(body)
    assert not any("shown as plain text" in s for s in within if isinstance(s, str))
    monkeypatch.setattr(journal_budget, "UNITS_PER_CHAR", 10**6)
    assert within == body_segments(body)


@pytest.mark.parametrize("unit", ["- a\n", "#\n", "1. 1. 1. 1. 1. a\n", "a\n", "*a* _b_ `c`\n\n", "> a\n"])
def test_a_body_over_the_budget_renders_its_start_and_shows_the_rest_as_escaped_text(unit):
    body = unit * (50_000 // len(unit)) + "<script>alert(1)</script> ![x](./pic/late.png)\x00\n"
    rendered = html_of(body)
    note = re.search(r"The rest of this note \(([\d,]+) characters\) is shown as plain text", rendered)
    assert note, rendered[-300:]
    rest = int(note[1].replace(",", ""))
    assert 0 < rest < len(body)
    shown_start = rendered[:note.start()]
    assert "<pre>" not in shown_start[:200] and ("<li>" in shown_start or "<h1>" in shown_start
                                                 or "<p>" in shown_start or "<blockquote>" in shown_start)
    tail = rendered[note.end():]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in tail and "<script" not in rendered  # escaped, never run
    assert "\x00" not in tail and "\n" not in rendered  # no clash with figure markers; one line as ever
    assert tail.count("&#10;") == body[-rest:].count("\n")  # the rest, every line of it


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(body=st.lists(st.one_of(fuzz_body, st.sampled_from(["- a", "> b", "1. c", "# d", "```", "<div>", "*e* _f_"])),
                     max_size=30).map("\n".join))
def test_any_body_cut_anywhere_shows_its_start_rendered_and_its_rest_as_the_text_itself(monkeypatch, body):
    monkeypatch.setattr(journal_budget, "UNITS_PER_CHAR", 0.02)  # a tiny budget: cuts fall everywhere
    monkeypatch.setattr(journal_budget, "SLACK_UNITS", 8)
    rendered = html_of(body)
    assert "\n" not in rendered and "<script" not in rendered.lower() and "<img" not in rendered.lower()
    note = re.search(r"The rest of this note \(([\d,]+) characters\) is shown as plain text.*?<pre>", rendered)
    if note:
        rest = html.unescape(rendered[note.end():].removesuffix("</pre>").replace("&#10;", "\n").replace("&#13;", "\r"))
        text = journal_budget.normalized(body)
        assert text.endswith(rest) and len(rest) == int(note[1].replace(",", ""))
