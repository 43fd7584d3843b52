"""Property-based fuzzing of the journal (hypothesis): generated Markdown with dated and plain headings, code
fences, figures in every form and raw HTML never raises anything but JournalError, is read in at most a few times
the time of prose of the same length (measured in the same test), and export -> import keeps every entry's date
and body exactly, whatever is left open (fences, comments, HTML blocks) and wherever."""

from __future__ import annotations

import datetime as dt
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab_notes import JournalError, Note
from lab_notes.journal import parse_date, parse_journal_text, write_journal

DATE_STYLES = ["{d:%Y.%m.%d}", "{d:%Y-%m-%d}", "{d:%Y/%m/%d}", "{d.year}年{d.month}月{d.day}日"]

# No '#', '=' or '-' in free text: a dated heading only where the generator means one (see below).
words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="#=-"),
                max_size=40)
figure = st.sampled_from([
    "![fig](./pic/a.png)", "![t][r]\n\n[r]: ./pic/b.png", "<img src=\"./pic/c.png\" alt=\"c\" style=\"zoom: 33%;\" />",
    "![web](https://example.org/x.png)", "<img src='../../etc/passwd'>", "![](<./pic/with space.png>)"])
# Something left open: it swallows the rest of its body, and on export must not swallow the next entry.
OPEN = st.sampled_from(["```", "~~~", "````python", "~~~~~~", "<!--", "<!-- open", "<pre>", "<div>", "<script>",
                        "<style>", "<textarea>", "<?php", "<![CDATA[", "<!DOCTYPE", "<table>", "<p", "```\n````"])
block = st.one_of(
    words,
    figure,
    st.builds(lambda w: f"```\n{w}\n```", words),
    st.builds(lambda w: f"<div>{w}</div>", words),
    # Plain headings at any level; dated ones only deeper than the entries (a journal in date order: export
    # writes entries by date, and a body ending in an open code fence swallows whatever follows it).
    st.builds(lambda n, w: f"{'#' * n} {w}", st.integers(1, 6), words.filter(lambda w: parse_date(w) is None)),
    st.builds(lambda n, d: f"{'#' * n} {d:%Y.%m.%d}", st.integers(4, 6), st.dates(dt.date(2000, 1, 1))),
    st.sampled_from(["<img ", "![", "[", "<", "`", "*", "_a", "> quoted", "- item", "1. item", "---", "\t",
                     "    indented", "===", "\r", "[r]: ./pic/d.png"]),
    OPEN,
)
# Blocks joined by a blank line or a bare line break (so an open block may end at the next line or swallow it).
body = st.builds(lambda blocks, joiners: "".join(b + j for b, j in zip(blocks, joiners)),
                 st.lists(block, max_size=8), st.lists(st.sampled_from(["\n\n", "\n", "", "   \n"]), min_size=8,
                                                        max_size=8))


@st.composite
def journals(draw) -> tuple[str, list[tuple[dt.date, str]]]:
    """A journal text of entries in date order, with the bodies that went into it."""
    days = sorted(draw(st.lists(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), min_size=1, max_size=6)))
    level, style = draw(st.integers(1, 3)), draw(st.sampled_from(DATE_STYLES))
    preamble = draw(st.one_of(st.just(""), body.map(lambda b: f"{b}\n\n")))
    entries = [(day, draw(body)) for day in days]
    text = preamble + "".join(f"{'#' * level} {style.format(d=day)}\n{text}\n\n" for day, text in entries)
    return text, entries


def seconds_to_read(text: str) -> float:
    """The best of three reads of `text` (parse or a clear JournalError), in CPU seconds of this process (a wall
    clock on a shared machine jumps by more than a millisecond)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        try:
            parse_journal_text(text, "fuzz.md", pictures={})
        except JournalError:
            pass
        best = min(best, time.process_time() - started)
    return best


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(max_size=2000), journals().map(lambda j: j[0])))
def test_any_text_parses_or_raises_a_journal_error_quickly(text):
    # Baseline, measured here: prose of the same length, or of 2,000 characters (below that, timings are noise),
    # with a figure in each paragraph as the real journal has: an import reads figures only where there is one.
    prose = "### 2022.12.08\n" + ("The loss fell after the fix, *then* rose. [run 3](./run/3) ![loss](./pic/l.png)"
                                "\n\n" * 60)
    baseline = seconds_to_read(prose[:max(len(text), 2000)])
    elapsed = seconds_to_read(text)
    assert elapsed < 10 * baseline, f"{elapsed:.4f} s for {len(text)} characters, prose {baseline:.4f} s"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journal=journals())
def test_export_then_import_keeps_every_entrys_date_and_body(journal, tmp_path_factory):
    text, _ = journal
    try:
        entries = parse_journal_text(text, "fuzz.md", pictures={})
    except JournalError:
        return  # a generated body may hold a heading that is not a real date: a clear error is the answer
    notes = [Note(i, e.entry_date, "", e.body, [], [], []) for i, e in enumerate(entries)]
    exported = write_journal(notes, tmp_path_factory.mktemp("export"))
    again = parse_journal_text(exported.read_bytes().decode("utf-8"), "journal.md", pictures={})
    assert [(e.entry_date, e.body) for e in again] == [(e.entry_date, e.body) for e in entries]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(undated=st.one_of(st.none(), body.filter(str.strip)),
       dated=st.lists(st.tuples(st.dates(dt.date(2000, 1, 1), dt.date(2099, 12, 31)), body), min_size=1, max_size=6),
       order=st.randoms(use_true_random=False))
def test_any_notes_survive_export_then_import_with_every_date_and_body_equal(undated, dated, order,
                                                                             tmp_path_factory):
    """Notes as the app stores them (any order, bodies with open fences, comments and HTML blocks anywhere, most
    without a final line break): the export format has one place for undated text, so at most one undated note."""
    notes = [*([(None, undated)] if undated is not None else []), *dated]
    order.shuffle(notes)
    exported = write_journal([Note(i, day, "", text, [], [], []) for i, (day, text) in enumerate(notes)],
                             tmp_path_factory.mktemp("export"))
    again = parse_journal_text(exported.read_bytes().decode("utf-8"), "journal.md", pictures={})
    key = lambda pair: (pair[0] or dt.date.min, pair[1])  # noqa: E731 - in any order
    assert sorted([(e.entry_date, e.body) for e in again], key=key) == sorted(notes, key=key)
