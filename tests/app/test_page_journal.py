"""The Journal page: pinned figures and the original journal.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from tests.app.conftest import ROOT, page, seeded_run


def test_a_pinned_chart_appears_in_the_journal(notebook):
    run_id = seeded_run(notebook)
    app = page("run", run=str(run_id))
    app.button(key="pin:Losses:pin").click().run()
    assert not app.exception
    (note,) = notebook.list_notes()
    assert note.run_ids == [run_id] and note.figures[0].chart_spec["keys"] == ["loss/recon_a", "loss/total"]
    assert note.figures[0].image.startswith(b"\x89PNG")
    journal = page("journal")
    markdown = " ".join(m.value for m in journal.markdown)
    assert f"Run {run_id}: losses" in markdown
    assert journal.get("image")


def test_journal_renders_the_original_with_missing_figures_and_no_raw_html(notebook):
    notebook.import_journal(ROOT / "tests" / "lab_notes" / "original-journal.md")
    notebook.add_note(None, "", "<script>alert(1)</script> plain words")
    app = page("journal")
    markdown = [m.value for m in app.markdown]
    assert markdown.index("### 2023.01.12") < markdown.index("### 2022.12.08")  # newest first
    assert any("Missing figure **image-20221214211710614.png**" in w.value for w in app.warning)
    app.text_input(key="journal:search").set_value("准确率").run()
    headings = [m.value for m in app.markdown if m.value.startswith("###")]
    assert headings == ["### 2022.12.14", "### 2022.12.08"]
