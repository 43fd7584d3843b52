"""Ordinary Markdown packed tight (every line a block of its own, one-letter paragraphs, nested lists, inline spans)
renders and imports in about the time of prose of the same length (issue #28): it once took up to 20 times as long.
bench/journal_render.py measures the same bodies at 1 MB and 20 kB and requires 2 x; here, at 100 kB in the test
suite on a shared machine, 2.5 x (CPU time, best of three, prose measured in the same test)."""

from __future__ import annotations

import pytest

from lab_notes.journal import parse_journal_text
from lab_notes.journal_render import body_segments
from tests.helpers import cpu_seconds
from tests.journal_bodies import dense_bodies, prose

SIZE = 100_000


def render_and_import(body: str) -> tuple[float, float]:
    journal = "### 2022.12.08\n" + body
    return cpu_seconds(lambda: body_segments(body)), cpu_seconds(lambda: parse_journal_text(journal, "x.md",
                                                                                               pictures={}))


@pytest.mark.parametrize("name", list(dense_bodies(100)))
def test_a_dense_body_renders_and_imports_in_about_the_time_of_prose(name):
    body = dense_bodies(SIZE)[name]
    (entry,) = parse_journal_text("### 2022.12.08\n" + body, "x.md", pictures={})
    assert entry.body == body  # imported whole, whatever rendering shows
    render, imported = render_and_import(body)
    render_prose, import_prose = render_and_import(prose(SIZE))
    assert render < 2.5 * render_prose and imported < 2.5 * import_prose, \
        f"{name}: render {render:.3f} s (prose {render_prose:.3f} s), import {imported:.3f} s (prose {import_prose:.3f} s)"
