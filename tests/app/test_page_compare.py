"""The Compare page.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from tests.app.conftest import page, seeded_run, trained_run


def test_compare_shows_only_differing_config_fields(notebook):
    first, second = seeded_run(notebook, name="a", lr=0.001), seeded_run(notebook, name="b", lr=0.002)
    app = page("compare", runs=f"{first},{second}")
    diff = app.dataframe[0].value
    assert list(diff.index) == ["optim.lr"]
    assert len(app.get("plotly_chart")) == 5  # one overlaid chart per metric


def test_compare_shows_few_shot_accuracy_side_by_side(notebook):
    first, second = trained_run(notebook, "a"), trained_run(notebook, "b", "runtime.seed=1")
    app = page("compare", runs=f"{first},{second}")
    few_shot = next(c.proto.spec for c in app.get("plotly_chart") if "held-out classes" in c.proto.spec)
    assert few_shot.count('"type":"bar"') == 2 and '"error_y"' in few_shot
    assert any("3-way 2-shot, 20 episodes on held-out classes" in c.value for c in app.caption)
