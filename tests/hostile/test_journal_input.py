"""Crafted journal files, picture zips, searches and exports: each ends in a result or a clear JournalError,
quickly, and never writes what it should not."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import pytest

from lab_notes import JournalError
from lab_notes.journal import body_segments, figure_references, split_entries
from tests.helpers import cpu_seconds
from tests.hostile.test_images import png
from tests.journal_bodies import prose

ONE_MB = 1 << 20


@pytest.mark.parametrize("unit", ["<img ", "![", "[", "<img src='a", "![a](", "<"])
def test_a_megabyte_of_figure_syntax_imports_and_renders_in_linear_time(notebook, unit):
    """A parser that backtracks over unclosed figure syntax takes quadratic time: 4 x the text, 16 x the seconds.
    Measured in CPU time against a quarter of the text and the journal's prose in the same test (an absolute limit
    failed on a loaded machine: 2.05 s; so did a wall-clock ratio to prose, 3.6 x, in CI)."""
    def import_and_render(text: str) -> None:
        (note_id,) = notebook.import_journal_upload(text.encode())
        segments = body_segments(notebook.get_note(note_id).body)
        assert segments and all(isinstance(s, str) for s in segments)

    def figure_syntax(size: int) -> str:
        return "### 2022.12.08\n\n" + unit * (size // len(unit)) + "\n"

    # Quadratic time would make the whole 16 x the quarter, however busy the machine. Against the prose (the
    # baseline), a megabyte of '<' (each one an HTML tag opened, a character at a time through every inline rule)
    # costs 1.5 x the prose in CPU time, busy machine or not: 3 x bounds a parser made uniformly slower.
    quarter = cpu_seconds(lambda: import_and_render(figure_syntax(ONE_MB // 4)), rounds=2)
    whole = cpu_seconds(lambda: import_and_render(figure_syntax(ONE_MB)))
    baseline = cpu_seconds(lambda: import_and_render("### 2022.12.08\n" + prose(ONE_MB)))
    assert whole < 8 * max(quarter, 0.05) and whole < 3 * baseline, \
        f"{unit!r}: {quarter:.2f} s for 256 kB, {whole:.2f} s for 1 MB, prose {baseline:.2f} s for 1 MB (CPU time)"


def test_headings_are_what_commonmark_calls_headings_in_any_common_date_form():
    text = ("intro\n\n```\n## 2020.01.01 in a fence: not an entry\n```\n\n> ## 2020.01.02 quoted: not an entry\n\n"
            "## 2022-12-08\nfirst\n\n## 2022/12/14\nsecond\n\n## 2023年1月12日\nthird\n\n### 2023.02.01 deeper\n")
    entries, _ = split_entries(text)
    assert [day for day, _ in entries] == [None, dt.date(2022, 12, 8), dt.date(2022, 12, 14), dt.date(2023, 1, 12)]
    assert "in a fence" in entries[0][1] and "quoted" in entries[0][1]
    assert entries[-1][1] == "third\n\n### 2023.02.01 deeper\n"  # another level stays prose (and its text)
    setext, _ = split_entries("2022.12.08\n==========\nbody\n")
    assert setext == [(None, ""), (dt.date(2022, 12, 8), "body\n")]


def test_every_image_form_is_a_figure_and_web_images_are_never_fetched(notebook):
    body = ("![inline](./pic/a.png) ![ref][r] <img src='./pic/c.png' alt='c'> ![web](https://example.org/x.png)\n"
            "`![code](./pic/no.png)`\n\n[r]: ./pic/b.png\n")
    refs = figure_references(body)
    assert [(r.name, r.remote) for r in refs] == [("a.png", False), ("b.png", False), ("c.png", False),
                                                  ("x.png", True)]
    rendered = "".join(s for s in body_segments(body) if isinstance(s, str))
    assert "<img" not in rendered and "example.org" not in rendered  # the page draws figures; web ones as links
    (note_id,) = notebook.import_journal_upload(f"### 2022.12.08\n{body}".encode())
    figures = notebook.get_note(note_id).figures
    assert [f.missing for f in figures][-1] == "a web or data address: not fetched"


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_only_referenced_pictures_are_read_from_the_zip(notebook):
    journal = b"### 2022.12.08\n![a](./pic/a.png)\n"
    bomb = zip_of({"pic/a.png": png(), "pic/unreferenced.bin": bytes(8 * ONE_MB)})
    (note_id,) = notebook.import_journal_upload(journal, bomb)
    assert notebook.get_note(note_id).figures[0].image == png()


def test_a_zip_bomb_is_refused_quickly_and_nothing_is_kept(notebook, tmp_path):
    names = [f"p{i}.png" for i in range(24)]
    journal = ("### 2022.12.08\n" + "".join(f"![x](./pic/{n})\n" for n in names)).encode()
    bomb = zip_of({f"pic/{n}": bytes(8 * ONE_MB) for n in names})
    assert len(bomb) < 400_000  # 192 MB inside

    def refuse() -> None:
        with pytest.raises(JournalError, match="over the 50:1 cap"):
            notebook.import_journal_upload(journal, bomb)

    refused = cpu_seconds(refuse)
    assert notebook.list_notes() == []
    # The baseline, measured here: the same journal with its 24 real pictures (read, checked and written). The
    # bomb is refused from the zip's directory, before any member is decompressed: no slower than that. CPU time,
    # as both take milliseconds, which one preemption on a busy machine would swamp.
    pictures = zip_of({f"pic/{n}": png() for n in names})
    imported = cpu_seconds(lambda: notebook.import_journal_upload(journal, pictures))
    assert refused < 2 * imported, f"bomb refused in {refused:.4f} s, the real pictures imported in {imported:.4f} s"


def patched(data: bytes, *, flag: int | None = None, method: int | None = None) -> bytes:
    """A zip with its first member's flag bits or compression method rewritten in both headers."""
    out = bytearray(data)
    local, central = out.find(b"PK\x03\x04"), out.find(b"PK\x01\x02")
    if flag is not None:
        out[local + 6:local + 8] = flag.to_bytes(2, "little")
        out[central + 8:central + 10] = flag.to_bytes(2, "little")
    if method is not None:
        out[local + 8:local + 10] = method.to_bytes(2, "little")
        out[central + 10:central + 12] = method.to_bytes(2, "little")
    return bytes(out)


@pytest.mark.parametrize("archive,message", [
    (zip_of({"../a.png": png()}), "points outside the archive"),
    (zip_of({"/abs/a.png": png()}), "points outside the archive"),
    (patched(zip_of({"pic/a.png": png()}), flag=1), "is encrypted"),
    (patched(zip_of({"pic/a.png": png()}, zipfile.ZIP_STORED), method=99), "compression method 99"),
    (b"PK\x03\x04 not really a zip", "not a zip archive"),
    (zip_of({"pic/a.png": bytes(9 * ONE_MB)}, zipfile.ZIP_STORED), "over the 8 MB image cap"),
])
def test_hostile_zip_members_get_a_clear_error(notebook, archive, message):
    with pytest.raises(JournalError, match=message):
        notebook.import_journal_upload(b"### 2022.12.08\n![a](./pic/a.png)\n", archive)
    assert notebook.list_notes() == []


def test_a_note_over_the_size_cap_is_refused(notebook):
    with pytest.raises(JournalError, match="character cap"):
        notebook.add_note(None, "", "x" * 2_000_001)
    with pytest.raises(JournalError, match="character cap"):
        notebook.import_journal_upload(b"### 2022.12.08\n" + b"x" * 2_000_001)


def test_export_refuses_a_folder_that_holds_something_unless_asked_to_replace(notebook, tmp_path):
    from lab_notes import Figure

    notebook.add_note(dt.date(2022, 12, 8), "", "one", figures=[Figure("new.png", png())])
    out = tmp_path / "export"
    (out / "pic").mkdir(parents=True)
    (out / "pic" / "stale.png").write_bytes(png())
    (out / "journal.md").write_text("someone's earlier export")
    with pytest.raises(JournalError, match="is not empty"):
        notebook.export_journal(out)
    assert (out / "journal.md").read_text() == "someone's earlier export"
    notebook.export_journal(out, replace=True)
    assert sorted(p.name for p in (out / "pic").iterdir()) == ["new.png"]  # no stale picture left behind
    assert "one" in (out / "journal.md").read_text()


@pytest.mark.parametrize("query", ["%", "_", "100%", "a_b", "\x00", "NEAR(a b)", '"', "*", "OR", "a AND", "^x",
                                   "col:val", "-neg", "((", "'", "\\"])
def test_any_search_text_is_a_result_never_an_error(notebook, query):
    notebook.add_note(None, "", "plain words")
    notebook.add_note(None, "", "100% of a_b")
    found = notebook.search_notes(query)
    words = query.replace("\x00", " ").lower().split()
    assert all(all(w in n.body.lower() for w in words) for n in found)  # literal matches only
    if query in ("%", "_", "100%", "a_b"):
        assert [n.body for n in found] == ["100% of a_b"]  # not a wildcard that matches everything
