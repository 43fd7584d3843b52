"""Losses as pure functions of tensors. All of them compute in float32 (or wider, if given wider)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def info_nce(features: torch.Tensor, labels: torch.Tensor, *, temperature: float,
             denominator: Literal["all", "negatives"] = "all", normalize: bool = True,
             base_temperature: float | None = None, log_sum_exp: bool = True,
             no_positive: Literal["exclude", "zero"] = "exclude") -> torch.Tensor:
    """Supervised InfoNCE over a batch of features (B, F) with integer labels (B,); a scalar.

    Each anchor i's loss is the mean over its positives p (same label, p != i) of
    -log(exp(s_ip/τ) / Σ_k exp(s_ik/τ)), with k over every other sample ("all") or over the other-class samples
    only ("negatives"); the result is the mean over anchors, times τ/base_temperature when that is given.
    `no_positive` says what an anchor with no positive (a lone sample of its class, or an empty denominator)
    does: "exclude" leaves it out of the mean (the design's choice); "zero" counts it as a loss of 0, as
    SupContrast's SupConLoss does, which pulls the mean towards 0 by the share of such anchors.
    Computed with log-sum-exp, so large similarities never overflow. The negatives-only form can go below zero:
    nothing bounds s_ip against its own term.
    `log_sum_exp=False` computes exp(s/τ) and divides, as the 2022 journal's code did: it overflows to inf (and
    the loss to NaN) once a similarity / τ passes about 88 in float32. Kept only to reproduce that run.
    """
    f = _at_least_float32(features)
    if normalize:
        f = F.normalize(f, dim=1)
    logits = f @ f.T / temperature
    n = len(labels)
    not_self = ~torch.eye(n, dtype=torch.bool, device=f.device)
    same = labels[:, None] == labels[None, :]
    positives = same & not_self
    in_denominator = not_self if denominator == "all" else ~same
    if log_sum_exp:
        log_denominator = torch.logsumexp(logits.masked_fill(~in_denominator, float("-inf")), dim=1, keepdim=True)
    else:
        log_denominator = torch.log((logits.exp() * in_denominator).sum(dim=1, keepdim=True))
    log_prob = torch.where(positives, logits - log_denominator, torch.zeros_like(logits))
    positive_count = positives.sum(1)
    counted = (positive_count > 0) & in_denominator.any(1)
    # Anchors left out are zeroed by `where`, never selected by a boolean index or branched on with `if`: both
    # would read the device (a host sync per step on CUDA). `where`, not a product: 0 · inf would be NaN.
    per_anchor = torch.where(counted, log_prob.sum(1) / positive_count.clamp_min(1), 0.0)
    scale = temperature / base_temperature if base_temperature else 1.0
    if no_positive == "zero":
        loss = -scale * per_anchor.sum() / n
    else:
        loss = -scale * per_anchor.sum() / counted.sum().clamp_min(1)
    return torch.where(counted.any(), loss, f.sum() * 0.0)  # no anchor counted: 0 (NaN from non-finite features)


def normalized_pixels(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each patch (…, P) shifted to mean 0 and scaled to variance 1, as MAE's norm_pix_loss target."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps).sqrt()


@dataclass
class PatchErrors:
    """A reconstruction's squared error summed over the patches its target scores, and how many it scores:
    kept apart so processes that each hold a slice of an episode can add both up before dividing."""

    summed: torch.Tensor
    scored: torch.Tensor

    def mean(self) -> torch.Tensor:
        """Per scored patch; no scored patch -> 0."""
        return self.summed / self.scored.clamp_min(1.0)


def reconstruction_errors(pred: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor,
                          target: Literal["masked", "all", "normalized"]) -> PatchErrors:
    """Mean squared error per patch, summed over the patches the target scores (see `reconstruction_loss`)."""
    goal = normalized_pixels(_at_least_float32(target_patches)) if target == "normalized" else target_patches
    per_patch = ((_at_least_float32(pred) - _at_least_float32(goal)) ** 2).mean(dim=-1)
    weights = torch.ones_like(mask) if target == "all" else mask
    return PatchErrors((per_patch * weights).sum(), weights.sum())


def reconstruction_loss(pred: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor,
                        target: Literal["masked", "all", "normalized"]) -> torch.Tensor:
    """Mean squared error per patch, averaged over the patches the target scores.

    pred, target_patches: (B, L, P); mask: (B, L), 1 = removed. "masked" and "normalized" score removed patches
    only (so visible patches get zero gradient), "all" scores every patch. No scored patch -> 0.
    """
    return reconstruction_errors(pred, target_patches, mask, target).mean()


def discriminator_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (Q, N) query-to-class scores against the queries' episode labels."""
    return F.cross_entropy(_at_least_float32(scores), labels)


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose highest score is at the true label."""
    return (scores.argmax(dim=1) == labels).float().mean()
