"""The Home page.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from tests.app.conftest import page


def test_home_launches_a_journal_experiment_in_one_click_and_edits_in_another(notebook):
    app = page("home")
    assert any("2022-12-14-normalized-infonce-2d" in m.value for m in app.markdown)
    next(b for b in app.button if b.key == "launch:2022-12-14-normalized-infonce-2d").click().run()
    (run,) = notebook.list_runs()
    assert (run.preset, run.status) == ("2022-12-14-normalized-infonce-2d", "queued")
    assert app.query_params.get("run") == str(run.id)  # on its run page
    app = page("home")
    next(b for b in app.button if b.key == "edit:2023-01-12-mae-two-decoders-different-targets").click().run()
    assert app.selectbox[0].value == "2023-01-12-mae-two-decoders-different-targets"  # the New-run form, pre-filled
