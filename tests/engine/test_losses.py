import math

import pytest
import torch

from engine.losses import discriminator_loss, info_nce, reconstruction_loss

LABELS = torch.tensor([0, 0, 1, 1])


def e(*indices: int, dim: int = 4) -> torch.Tensor:
    return torch.eye(dim, dtype=torch.float64)[list(indices)]


@pytest.mark.parametrize("tau", [0.05, 0.5, 1.0, 3.0])
def test_identical_unit_vectors_give_log_3(tau):
    features = torch.ones(4, 3, dtype=torch.float64) / math.sqrt(3)
    assert info_nce(features, LABELS, temperature=tau).item() == pytest.approx(math.log(3), abs=1e-6)


@pytest.mark.parametrize("tau,expected", [(1.0, 0.5514447139320511), (0.5, 0.239544766221885)])
def test_two_pairs_of_basis_vectors(tau, expected):
    assert info_nce(e(0, 0, 1, 1), LABELS, temperature=tau).item() == pytest.approx(expected, abs=1e-6)


def test_orthonormal_vectors_give_log_3():
    assert info_nce(e(0, 1, 2, 3), LABELS, temperature=0.7).item() == pytest.approx(math.log(3), abs=1e-6)


def test_negatives_only_denominator_goes_below_zero():
    loss = info_nce(e(0, 0, 1, 1), LABELS, temperature=1.0, denominator="negatives")
    assert loss.item() == pytest.approx(math.log(2) - 1, abs=1e-6)
    assert loss.item() < 0


def test_naive_exp_form_matches_log_sum_exp_until_it_overflows():
    features = torch.randn(8, 2, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    stable = info_nce(features, labels, temperature=0.5)
    naive = info_nce(features, labels, temperature=0.5, log_sum_exp=False)
    assert naive.item() == pytest.approx(stable.item(), abs=1e-9)
    huge = (features * 100).float()
    assert torch.isfinite(info_nce(huge, labels, temperature=0.1, normalize=False))
    assert not torch.isfinite(info_nce(huge, labels, temperature=0.1, normalize=False, log_sum_exp=False))


def test_base_temperature_scales_the_loss():
    plain = info_nce(e(0, 0, 1, 1), LABELS, temperature=0.5)
    scaled = info_nce(e(0, 0, 1, 1), LABELS, temperature=0.5, base_temperature=0.07)
    assert scaled.item() == pytest.approx(plain.item() * 0.5 / 0.07, rel=1e-9)


def test_anchors_without_a_positive_are_left_out():
    features = e(0, 0, 1, 2)
    with_singletons = info_nce(features, torch.tensor([0, 0, 1, 2]), temperature=1.0)
    # Only anchors 0 and 1 count; each sees its twin (s=1) and two others (s=0): -log(e / (e + 2)).
    assert with_singletons.item() == pytest.approx(math.log(math.e + 2) - 1, abs=1e-9)


def test_gradients_stay_finite_for_large_unnormalised_features():
    torch.manual_seed(0)
    features = (torch.randn(16, 8) * 100).requires_grad_()
    labels = torch.arange(4).repeat_interleave(4)
    loss = info_nce(features, labels, temperature=0.07, denominator="all", normalize=False)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(features.grad).all()


def test_info_nce_computes_in_float32_for_bfloat16_input():
    features = torch.randn(8, 4).bfloat16()
    labels = torch.arange(4).repeat_interleave(2)
    assert info_nce(features, labels, temperature=0.1).dtype == torch.float32


def test_reconstruction_loss_ignores_visible_patches():
    pred = torch.randn(2, 4, 12, requires_grad=True)
    target = torch.randn(2, 4, 12)
    mask = torch.tensor([[1.0, 0, 0, 1], [0, 1, 0, 0]])
    reconstruction_loss(pred, target, mask, "masked").backward()
    visible = mask == 0
    assert (pred.grad[visible] == 0).all()
    assert (pred.grad[~visible].abs().sum(-1) > 0).all()


def test_reconstruction_loss_all_and_normalized_targets():
    target = torch.rand(2, 4, 12)
    mask = torch.zeros(2, 4)
    assert reconstruction_loss(target, target, mask, "all").item() == 0.0
    assert reconstruction_loss(torch.zeros_like(target), target, mask, "masked").item() == 0.0  # nothing masked
    normalized = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert reconstruction_loss(normalized, target, torch.ones(2, 4), "normalized").item() == pytest.approx(0, abs=1e-10)


def test_discriminator_loss_is_cross_entropy():
    scores = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    assert discriminator_loss(scores, torch.tensor([0, 1])).item() == pytest.approx(math.log(1 + math.exp(-10)), rel=1e-3)


def supcon_loss_reference(features: torch.Tensor, labels: torch.Tensor, temperature: float,
                          base_temperature: float) -> torch.Tensor:
    """SupContrast's SupConLoss (HobbitLong/SupContrast losses.py; one view, contrast_mode 'all'), written out in
    float64: an anchor with no positive divides by 1 instead of 0, so it counts as a loss of 0 in the mean."""
    features = features.double()
    n = len(labels)
    mask = (labels[:, None] == labels[None, :]).double()
    anchor_dot_contrast = features @ features.T / temperature
    logits = anchor_dot_contrast - anchor_dot_contrast.max(dim=1, keepdim=True).values
    logits_mask = 1 - torch.eye(n, dtype=torch.float64)
    mask = mask * logits_mask
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mask_pos_pairs = mask.sum(1)
    mask_pos_pairs = torch.where(mask_pos_pairs < 1e-6, torch.ones_like(mask_pos_pairs), mask_pos_pairs)
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask_pos_pairs
    return (-(temperature / base_temperature) * mean_log_prob_pos).mean()


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2], [0, 1, 1, 2, 2, 2, 3], [3, 0, 0, 0]])
@pytest.mark.parametrize("temperature, base", [(0.1, 0.07), (0.5, 0.5)])
def test_no_positive_zero_is_supcon_and_exclude_leaves_lone_anchors_out(labels, temperature, base):
    labels = torch.tensor(labels)
    features = torch.nn.functional.normalize(torch.randn(len(labels), 8, dtype=torch.float64,
                                                         generator=torch.Generator().manual_seed(len(labels))), dim=1)
    reference = supcon_loss_reference(features, labels, temperature, base)
    zero = info_nce(features, labels, temperature=temperature, base_temperature=base, no_positive="zero")
    assert zero.item() == pytest.approx(reference.item(), rel=1e-9, abs=1e-12)
    lone = (labels[:, None] == labels[None, :]).sum(1) == 1
    exclude = info_nce(features, labels, temperature=temperature, base_temperature=base)  # the default
    # the same per-anchor losses, averaged over the anchors that have a positive instead of over every anchor
    expected = reference.item() * len(labels) / int((~lone).sum())
    assert exclude.item() == pytest.approx(expected, rel=1e-9)
    assert exclude.item() != pytest.approx(zero.item())


def test_no_positive_is_a_config_field_whose_help_says_both_choices():
    from engine.config import LossConfig

    field = LossConfig.model_fields["no_positive"]
    assert field.default == "exclude" and "left out of the mean" in field.description
    assert "counted as 0" in field.description and "SupCon" in field.description
