import math

import pytest

from engine.config import with_overrides
from engine.presets import PRESETS
from engine.sinks import JsonlSink, read_metrics
from engine.train import learning_rate, train
from tests.engine.test_presets import Recorder
from tests.helpers import tiny


def test_same_seed_gives_identical_losses(tiny_config):
    first, second = Recorder(), Recorder()
    train(tiny_config, first)
    train(tiny_config, second)
    assert first.losses()[:5] == second.losses()[:5]
    other = Recorder()
    train(with_overrides(tiny_config, ["runtime.seed=1"]), other)
    assert other.losses()[:5] != first.losses()[:5]


def test_stop_then_resume_matches_a_straight_run(tiny_config, tmp_path):
    straight = Recorder()
    train(tiny_config, straight)
    stopped = Recorder(stop_after=4)
    result = train(tiny_config, stopped, run_dir=tmp_path)
    assert result.status == "stopped" and result.step == 4
    resumed = Recorder()
    result = train(tiny_config, resumed, resume_from=tmp_path / "checkpoints", run_dir=tmp_path)
    assert result.status == "completed" and min(resumed.metrics) == 5
    assert stopped.losses() + resumed.losses() == straight.losses()
    assert resumed.metrics[8]["eval/loss/total"] == straight.metrics[8]["eval/loss/total"]


def test_metrics_cover_every_term_accuracy_gradient_and_lr(tiny_config, tmp_path):
    sink = JsonlSink(tmp_path)
    train(tiny_config, sink, run_dir=tmp_path)
    sink.close()
    rows = read_metrics(tmp_path)
    step_one = {k for row in rows if row["step"] == 1 for k in row}
    assert {"loss/total", "loss/contrastive", "loss/disc", "loss/recon_a", "acc/discriminator_masked",
            "acc/prototype_masked", "grad_norm", "lr", "images_per_s"} <= step_one  # tiny masks half its patches
    tflops = [row["perf/tflops"] for row in rows if "perf/tflops" in row]
    assert len(tflops) == 8 and all(t > 0 for t in tflops)  # each step, from one count of the step's FLOPs
    assert not any("perf/mfu" in row for row in rows)  # a CPU has no known bf16 peak: no MFU made up
    evaluated = {k for row in rows if row["step"] == 4 for k in row}
    assert {"eval/loss/total", "eval/acc/discriminator", "eval/acc/prototype", "eval/ci95/prototype",
            "eval/acc/knn", "eval/acc/linear_probe", "seen/acc/prototype", "eval/alignment"} <= evaluated
    assert sorted(p.name for p in (tmp_path / "images" / "reconstruction").iterdir()) == [
        "step_00000004.png", "step_00000008.png"]
    assert (tmp_path / "status.json").exists()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000000004.pt", "step_000000008.pt"]


def test_learning_rate_warms_up_then_follows_cosine():
    cfg = with_overrides(PRESETS["tiny"], ["optim.lr=1.0", "optim.warmup_episodes=10", "optim.schedule=\"cosine\"",
                                           "optim.min_lr=0.1"]).optim
    assert learning_rate(cfg, 110, 5) == pytest.approx(0.5)
    assert learning_rate(cfg, 110, 10) == pytest.approx(1.0)
    assert learning_rate(cfg, 110, 60) == pytest.approx(0.55)
    assert learning_rate(cfg, 110, 110) == pytest.approx(0.1)


@pytest.mark.slow
def test_training_on_digits_learns_above_chance():
    cfg = tiny(PRESETS["2022-12-14-normalized-infonce-2d"], "data.dataset=\"digits\"", "data.n_way=5",
               "data.k_shot=5", "data.q_queries=5", "model.contrastive.feature_dim=16", "optim.lr=0.003",
               "schedule.episodes=150", "schedule.eval_every=150", "schedule.eval_episodes=10")
    sink = Recorder()
    train(cfg, sink)
    accuracy = sink.metrics[150]["eval/acc/prototype"]
    assert accuracy > 0.5, accuracy  # chance is 0.2
    assert math.isfinite(sink.metrics[150]["loss/total"])


def test_training_accuracy_on_masked_views_has_its_own_name():
    """`eval/acc/…` is held-out and unmasked; a masked run's training accuracy is `acc/…_masked`, never under
    the plain `acc/…` that an unmasked run's training accuracy keeps."""
    short = ["schedule.episodes=2", "schedule.eval_every=2", "schedule.final_eval_episodes=0"]
    masked, unmasked = Recorder(), Recorder()
    train(tiny(PRESETS["tiny"], *short), masked)
    train(tiny(PRESETS["2022-12-08-disc-vit1"], *short), unmasked)
    assert {"acc/prototype_masked", "acc/discriminator_masked"} <= set(masked.metrics[1])
    assert not {"acc/prototype", "acc/discriminator"} & set(masked.metrics[1])
    assert {"eval/acc/prototype", "eval/acc/discriminator"} <= set(masked.metrics[2])
    assert {"acc/prototype", "acc/discriminator"} <= set(unmasked.metrics[1])
    assert not any(key.endswith("_masked") for key in unmasked.metrics[1])
