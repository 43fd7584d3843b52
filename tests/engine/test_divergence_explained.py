import json
import math

import pytest
import torch

from engine.presets import PRESETS
from engine.guard import divergence_diagnostics, explain_overflow
from engine.losses import info_nce
from engine.sinks import JsonlSink
from engine.train import train

DIVERGES = "2022-12-14-negatives-infonce-diverges"

# Two classes; anchor 0's self logit is |f_0|² / τ = 100 / 0.5 = 200, past float32's exp limit (88.72).
FEATURES = torch.tensor([[10.0, 0.0], [9.0, 1.0], [0.0, 3.0], [0.5, 2.5]])
LABELS = torch.tensor([0, 0, 1, 1])


def loss_config(**changes):
    return PRESETS[DIVERGES].loss.model_copy(update=changes)


def unstable_loss(cfg) -> torch.Tensor:
    return info_nce(FEATURES, LABELS, temperature=cfg.temperature, denominator=cfg.denominator,
                    normalize=cfg.normalize, log_sum_exp=False)


@pytest.mark.parametrize("denominator", ["negatives", "all"])
def test_an_overflowing_self_logit_times_the_masks_zero_is_the_nan(denominator):
    cfg = loss_config(denominator=denominator, log_sum_exp=False)
    found = explain_overflow(FEATURES, LABELS, cfg)
    assert found["nan_cause"] == "inf·0"
    assert found["largest"]["self"] == pytest.approx(200.0)
    assert found["overflowed"]["self"] == 2  # 200 and 164: anchor 0's and anchor 1's own terms
    assert "self" in found["masked_by_zero"] and "self" not in found["in_denominator"]
    assert ("positive" in found["masked_by_zero"]) == (denominator == "negatives")
    # the loss itself, not a copy of it, is NaN; log-sum-exp on the same features is not
    assert math.isnan(float(unstable_loss(cfg))) and math.isnan(found["loss"])
    assert math.isfinite(found["stable_loss"])
    assert found["stable_loss"] == pytest.approx(float(info_nce(
        FEATURES, LABELS, temperature=0.5, denominator=denominator, normalize=False, log_sum_exp=True)))
    # the NaN is born where the loss multiplies exp by its mask: on the diagonal, as inf·0
    exp = (FEATURES @ FEATURES.T / cfg.temperature).exp()
    assert exp[0, 0].isinf() and (exp * ~torch.eye(4, dtype=torch.bool))[0, 0].isnan()
    assert "inf·0" in found["explanation"] and "200.0" in found["explanation"]


def test_the_stable_form_has_no_nan_cause():
    found = explain_overflow(FEATURES, LABELS, loss_config(log_sum_exp=True))
    assert found["nan_cause"] is None
    assert found["loss"] == found["stable_loss"] and math.isfinite(found["loss"])
    assert "log-sum-exp" in found["explanation"]


def test_small_logits_explain_nothing_and_diagnostics_carry_the_explanation():
    cfg = loss_config(log_sum_exp=False)
    small = FEATURES / 10  # self logits at most 2
    found = explain_overflow(small, LABELS, cfg)
    assert found["nan_cause"] is None and sum(found["overflowed"].values()) == 0
    assert math.isfinite(found["loss"])
    diagnostics = divergence_diagnostics(FEATURES, None, cfg, 0.01, labels=LABELS)
    assert diagnostics["overflow"]["nan_cause"] == "inf·0"
    assert {"lr", "feature_norm_max", "feature_norm_mean", "largest_logit"} <= set(diagnostics)
    assert "overflow" not in divergence_diagnostics(FEATURES, None, cfg, 0.01)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_diverging_preset_reports_inf_times_zero(one_thread, tmp_path):
    sink = JsonlSink(tmp_path)
    result = train(PRESETS[DIVERGES], sink)
    sink.close()
    assert result.status == "diverged"
    with open(tmp_path / "events.jsonl", encoding="utf-8") as lines:
        events = [json.loads(line) for line in lines if line.strip()]
    divergence = next(e for e in events if e["kind"] == "divergence")
    overflow = divergence["diagnostics"]["overflow"]
    assert overflow["nan_cause"] == "inf·0", overflow["explanation"]
    assert "inf·0" in overflow["explanation"]
    assert math.isfinite(overflow["stable_loss"])
