import datetime as dt
import io
import shutil
from pathlib import Path

import pytest
from PIL import Image

from lab_notes import JournalError

# The user's journal beside the checkout (../shared), else the copy kept with these tests.
BESIDE = Path(__file__).resolve().parents[3] / "shared" / "journal" / "original-journal.md"
ORIGINAL = BESIDE if BESIDE.exists() else Path(__file__).with_name("original-journal.md")


def png(colour: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (6, 4), (colour, 0, 0)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def original(tmp_path) -> Path:
    copy = tmp_path / "journal" / "original-journal.md"
    copy.parent.mkdir()
    shutil.copy(ORIGINAL, copy)
    return copy


def test_original_journal_imports_as_three_dated_entries(notebook, original):
    ids = notebook.import_journal(original)
    notes = notebook.list_notes()
    assert [n.id for n in notes] == ids
    assert [n.entry_date for n in notes] == [dt.date(2022, 12, 8), dt.date(2022, 12, 14), dt.date(2023, 1, 12)]
    assert "infonce的实现是把所有同类和不同类加起来求平均" in notes[0].body
    assert "第3999个episodes开始出现损失计算为nan" in notes[1].body
    assert "位置编码采用timm默认的可学习的nn.Parameter初始化" in notes[2].body
    source = original.read_text(encoding="utf-8")
    expected_names = [line.split('src="./pic/')[1].split('"')[0] for line in source.splitlines() if "<img" in line]
    names = [f.name for n in notes for f in n.figures]
    assert names == expected_names and len(names) == 20
    assert all(f.image is None and f.missing == "file not found" for n in notes for f in n.figures)


def test_export_then_import_gives_the_same_entries(notebook, original, tmp_path):
    notebook.import_journal(original)
    exported = notebook.export_journal(tmp_path / "out")
    assert exported == tmp_path / "out" / "journal.md"
    assert exported.read_bytes() == original.read_bytes()  # prose byte for byte, headings, figure tags
    before = notebook.list_notes()
    for note in before:
        notebook.delete_note(note.id)
    notebook.import_journal(exported)
    after = notebook.list_notes()
    assert [(n.entry_date, n.body, [f.name for f in n.figures]) for n in after] == \
        [(n.entry_date, n.body, [f.name for f in n.figures]) for n in before]


def test_figures_found_beside_the_journal_travel_both_ways(notebook, tmp_path):
    folder = tmp_path / "j"
    (folder / "pic").mkdir(parents=True)
    (folder / "pic" / "a.png").write_bytes(png(200))
    (folder / "journal.md").write_text(
        "### 2023.01.12\n\nAE\n\n<img src=\"./pic/a.png\" alt=\"a\" style=\"zoom: 33%;\" />\n\n"
        "![loss curve](./pic/missing.png)\n", encoding="utf-8")
    notebook.import_journal(folder / "journal.md")
    (note,) = notebook.list_notes()
    assert [(f.name, f.image == png(200), f.missing, f.caption) for f in note.figures] == [
        ("a.png", True, None, "a"), ("missing.png", False, "file not found", "loss curve")]
    out = notebook.export_journal(tmp_path / "export")
    assert (tmp_path / "export" / "pic" / "a.png").read_bytes() == png(200)
    assert not (tmp_path / "export" / "pic" / "missing.png").exists()
    assert out.read_text(encoding="utf-8") == (folder / "journal.md").read_text(encoding="utf-8")


def test_app_notes_export_their_figures_as_markdown_images(notebook, tmp_path):
    from lab_notes import Figure

    notebook.add_note(dt.date(2026, 11, 28), "pinned", "The loss after the fix.",
                      figures=[Figure("../../evil.png", png(9), "loss")])
    out = notebook.export_journal(tmp_path / "export")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("### 2026.11.28\n") and "**pinned**" in text
    assert "![loss](./pic/evil.png)" in text
    assert [p.name for p in (tmp_path / "export" / "pic").iterdir()] == ["evil.png"]
    assert not (tmp_path / "evil.png").exists()


@pytest.mark.parametrize("content,message", [
    (b"just prose, no headings\n", r"no dated headings \(such as ### 2022.12.08\)"),
    (b"### 2022.12.08\nok\n### 2022.13.45\nbad\n", "bad.md, line 3: heading '2022.13.45' is not a real date"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "binary"),
    (b"### 2022.12.08\n\xff\xfe\xfa not utf-8\n", "not UTF-8"),
])
def test_malformed_journals_give_a_clear_error_and_write_nothing(notebook, tmp_path, content, message):
    notebook.add_note(dt.date(2020, 1, 1), "kept", "existing note")
    path = tmp_path / "bad.md"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=message):
        notebook.import_journal(path)
    assert [n.title for n in notebook.list_notes()] == ["kept"]


def test_text_before_the_first_heading_is_an_undated_entry(notebook, tmp_path):
    path = tmp_path / "j.md"
    path.write_text("Notes on the project.\n\n### 2022.12.08\n\nbaseline\n", encoding="utf-8")
    notebook.import_journal(path)
    notes = notebook.list_notes()
    assert [(n.entry_date, n.body) for n in notes] == [(dt.date(2022, 12, 8), "\nbaseline\n"),
                                                       (None, "Notes on the project.\n\n")]


def test_figures_pointing_outside_the_folder_are_never_read(notebook, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(1))
    folder = tmp_path / "journal"
    folder.mkdir()
    (folder / "pic").mkdir()
    (folder / "pic" / "link.png").symlink_to(secret)
    (folder / "j.md").write_text(
        "### 2022.12.08\n\n<img src=\"../secret.png\" />\n\n![x](/etc/passwd)\n\n![y](./pic/link.png)\n\n"
        "![z](https://example.com/a.png)\n", encoding="utf-8")
    notebook.import_journal(folder / "j.md")
    figures = notebook.list_notes()[0].figures
    assert all(f.image is None for f in figures)
    assert [f.missing.split(":")[0] for f in figures] == [
        "'../secret.png' points outside the journal folder", "'/etc/passwd' points outside the journal folder",
        "'./pic/link.png' leads outside the journal folder", "a web or data address"]
    assert [f.name for f in figures] == ["secret.png", "passwd", "link.png", "https://example.com/a.png"]


def test_corrupt_figure_file_is_a_marked_placeholder(notebook, tmp_path):
    (tmp_path / "pic").mkdir()
    (tmp_path / "pic" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ngarbage")
    (tmp_path / "j.md").write_text("### 2022.12.08\n\n![b](./pic/broken.png)\n", encoding="utf-8")
    notebook.import_journal(tmp_path / "j.md")
    (figure,) = notebook.list_notes()[0].figures
    assert figure.image is None and "not a readable image" in figure.missing
