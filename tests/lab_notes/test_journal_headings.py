"""Where a journal's entries start (lab_notes.journal_headings): the linear scan of heading lines gives exactly what
markdown-it's block parse gives wherever it answers at all, it answers for journals as export writes them, and it
keeps importing tightly packed Markdown cheap (issue #28)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab_notes.journal import split_entries
from lab_notes.journal_headings import NEWLINES, _parsed, _scanned, dated_headings
from tests.hostile.test_journal_fuzz import block, journals
from tests.lab_notes.test_journal import ORIGINAL

# What could hide a heading from the scan, or make a line look like one: dated headings at every level and indent,
# inside lists, quotes and code, setext ones, and every kind of block that may swallow the next line.
tricky = st.sampled_from([
    "### 2022.01.02", "# 2022-01-03", "## 2023年1月12日", " ### 2022.01.04", "   # 2022.01.05", "    # 2022.01.06",
    "\t# 2022.01.07", "- # 2022.01.08", "> ## 2022.01.09", "1. ### 2022.01.10", "2022.01.11\n---", "2022.01.12\n===",
    "2022年1月\n13日\n===", "### 2022.13.45", "####### 2022.01.14", "#2022.01.15", "### 2022.01.16 ###",
    "### 2022.01.17 #x", "```", "~~~", "<div>", "<img src='a.png'>", "<!--", "-->", "<pre>", "</pre>", "<?x",
    "- a", "  - b", "> q", "1. a", "a", "", "   ", "***", "[a]: ./x.png", "![a]", "<p>", "    code", "- ```",
    "> ```", "  ```", " <div>", "text <b>", "###", "# a"])
lines = st.lists(st.one_of(tricky, block), max_size=12)
endings = st.sampled_from(["\n", "\r\n", "\r"])


def agree(text: str) -> bool:
    """Whether the scan agrees with the block parse (True), or leaves the question to it (False)."""
    scanned = _scanned(NEWLINES.sub("\n", text))
    if scanned is None:
        return False
    assert scanned == _parsed(text, {}), text
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=lines, ending=endings)
def test_the_scan_agrees_with_the_block_parse_on_any_lines(parts, ending):
    agree(ending.join(parts) + ending)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journal=journals())
def test_the_scan_agrees_with_the_block_parse_on_generated_journals(journal):
    agree(journal[0])


@pytest.mark.parametrize("text", [
    "### 2022.12.08\nfirst\n### 2022.12.14\nsecond\n",
    "intro\n\n## 2022-12-08\n- a\n- b\n## 2022/12/14\n> quoted\nlazy\n## 2023年1月12日\n1. x\n\n    code\n",
    "### 2022.12.08\n<img src='./pic/a.png'>\n\n\n### 2022.12.14\ntext # 2022.01.01\n",
    "### 2022.12.08\r\nwindows\r\n### 2022.12.14\rold mac\r### 2022.12.20 ###\n",
    "### 2022.12.08\n" + "- a\n" * 1000 + "### 2022.12.09\n" + "1. 1. a\n" * 500,
])
def test_the_scan_answers_for_journals_without_fences_or_html_above_a_heading(text):
    assert agree(text)


@pytest.mark.parametrize("text", [
    "```\n### 2022.12.08\n",  # in a fence
    "<div>\n### 2022.12.08\n",  # in an HTML block
    "- a\n\n ### 2022.12.08\n",  # indented: in the list item? the parse decides
    "2022.12.08\n---\n",  # a setext heading
])
def test_where_a_heading_may_be_hidden_the_block_parse_decides(text):
    assert _scanned(text) is None
    assert dated_headings(text)[0] == _parsed(text, {})


def test_the_original_journal_splits_as_before():
    text = ORIGINAL.read_text(encoding="utf-8")
    assert agree(text)  # figures on lines of their own, a blank line before each heading: the scan answers
    assert [day for day, _ in split_entries(text)[0]][1:] == [dt.date(2022, 12, 8), dt.date(2022, 12, 14),
                                                               dt.date(2023, 1, 12)]
