"""What the run and New-run pages say a number is (issue 23): MFU's precision, the InfoNCE no-positive rule, the
masked training accuracy's name next to old runs' `acc/prototype`, the shared-decoder preset's lint, and
which speed a live and an ended run show."""

from __future__ import annotations

from engine.config import with_overrides
from engine.presets import PRESETS
from lab_notes import Notebook
from tests.app.conftest import notebook, live_charts, page  # noqa: F401 (notebook is a fixture)
from tests.helpers import claimed


def a_run(notebook: Notebook, metrics: dict[str, float], *, device: str = "cpu (fp32)", overrides: tuple = (),
          drop_no_positive: bool = False) -> int:
    config = with_overrides(PRESETS["tiny"], list(overrides)).model_dump(mode="json")
    if drop_no_positive:  # a run stored before the field existed
        del config["loss"]["no_positive"]
    run_id = notebook.create_run(config, name="named", preset="tiny")
    attempt = claimed(notebook, run_id)
    notebook.set_device(attempt, device)
    for step in (1, 2):
        notebook.log_metrics(run_id, step, {"loss/total": 1.0 / step, **metrics}, attempt=attempt)
    notebook.flush()
    notebook.finish_attempt(attempt, "completed")
    return run_id


def test_mfu_names_the_precision_its_peak_is_for(notebook):
    for precision in ("fp32", "tf32", "bf16"):
        run_id = a_run(notebook, {"perf/tflops": 1.95, "perf/mfu": 0.1}, device=f"cuda ({precision})")
        speed = " ".join(m.value for m in page("run", run=str(run_id)).markdown if m.value.startswith("**Speed**"))
        assert f"MFU 10.0 % of the GPU's dense {precision} peak" in speed


def test_an_old_runs_acc_prototype_still_charts_and_the_masked_name_is_explained(notebook):
    old = a_run(notebook, {"acc/prototype": 0.5})
    app = page("run", run=str(old))
    assert [s["name"] for s in live_charts(app)["Accuracy"]["series"]] == ["acc/prototype"]
    assert not any("_masked" in c.value for c in app.caption)
    new = a_run(notebook, {"acc/prototype_masked": 0.5, "eval/acc/prototype": 0.6})
    app = page("run", run=str(new))
    assert {s["name"] for s in live_charts(app)["Accuracy"]["series"]} == {"acc/prototype_masked",
                                                                          "eval/acc/prototype"}
    assert any("`acc/…_masked`" in c.value and "masked" in c.value and "`eval/acc/…`: held-out" in c.value
               for c in app.caption)


def test_the_config_tab_says_which_no_positive_rule_the_loss_used(notebook):
    for overrides, drop, said in ((("loss.no_positive=zero",), False, "counted as a loss of 0"),
                                  ((), False, "left out of the mean"), ((), True, "left out of the mean")):
        run_id = a_run(notebook, {}, overrides=overrides, drop_no_positive=drop)
        captions = [c.value for c in page("run", run=str(run_id), tab="Config").caption]
        assert any("loss.no_positive" in c and said in c for c in captions), captions


def test_the_shared_decoder_preset_shows_its_lint_and_says_why_it_is_kept(notebook):
    name = "2023-01-12-vit-ae-shared-decoders"
    app = page("new_run", preset=name)
    assert app.selectbox[0].value == name
    assert any("model.decoders.share" in w.value and "only rescales the loss" in w.value for w in app.warning)


def test_a_live_runs_speed_is_its_last_steps_and_an_ended_runs_its_median_as_its_draft_gives(notebook):
    config = with_overrides(PRESETS["tiny"], []).model_dump(mode="json")
    run_id = notebook.create_run(config, name="speed", preset="tiny")
    attempt = claimed(notebook, run_id)
    for step, images_per_s in enumerate([300.0, 310.0, float("nan"), 320.0, 330.0, 40.0], start=1):
        notebook.log_metrics(run_id, step, {"loss/total": 1.0, "images_per_s": images_per_s}, attempt=attempt)
    notebook.flush()

    def speed() -> str:
        return " ".join(m.value for m in page("run", run=str(run_id)).markdown if m.value.startswith("**Speed**"))

    assert speed() == "**Speed** · 40 images/s"  # live: the step just measured (the last one, slowed here)
    notebook.finish_attempt(attempt, "completed")
    assert speed() == "**Speed** (median over the run) · 310 images/s"  # the NaN left out, as the draft does
