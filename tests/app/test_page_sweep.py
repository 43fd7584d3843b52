"""The Sweeps page, and the New-run form's Sweep section that fills it.
Streamlit's AppTest against a seeded temporary notebook (fixtures in conftest.py)."""

from __future__ import annotations

from tests.app.conftest import page
from tests.helpers import claimed


def test_a_sweep_from_the_form_queues_four_runs_and_its_page_marks_the_best(notebook):
    app = page("new_run")
    app.selectbox(key="sweep-field0:tiny").set_value("optim.lr").run()
    app.text_input(key="sweep-values0:tiny").set_value("0.001, 0.01").run()
    app.selectbox(key="sweep-field1:tiny").set_value("loss.temperature").run()
    app.text_input(key="sweep-values1:tiny").set_value("0.1, 0.5").run()
    next(b for b in app.button if b.label.startswith("🧹 Launch sweep (4 runs)")).click().run()
    (sweep,) = notebook.list_sweeps()
    runs = [notebook.get_run(i) for i in sweep.run_ids]
    assert len(runs) == 4 and {r.sweep_id for r in runs} == {sweep.id}
    assert sorted((r.config["optim"]["lr"], r.config["loss"]["temperature"]) for r in runs) == [
        (0.001, 0.1), (0.001, 0.5), (0.01, 0.1), (0.01, 0.5)]
    for rank, run in enumerate(runs):  # the third run reaches the highest held-out accuracy
        attempt = claimed(notebook, run.id)
        for step in (1, 2):
            notebook.log_metrics(run.id, step, {"eval/acc/prototype": [0.3, 0.4, 0.7, 0.5][rank] * step / 2,
                                            "loss/total": 1.0 / step}, attempt=attempt)
        notebook.finish_attempt(attempt, "completed")
    sweep_page = page("sweep", sweep=str(sweep.id))
    assert any(f"Best by eval/acc/prototype: [run {runs[2].id}" in s.value for s in sweep_page.success)
    specs = [c.proto.spec for c in sweep_page.get("plotly_chart")]
    assert any('"parcoords"' in spec and "optim.lr" in spec for spec in specs)
    assert sweep_page.dataframe[0].value.iloc[2]["best"] == "🏆"
