"""Lint: known pitfalls of configs that validate, warned before launch and stored with the run, each at a field
path. No torch."""

from __future__ import annotations

from engine.config import Problem, RunConfig


def lint(cfg: RunConfig) -> list[Problem]:
    """Warnings about configs that validate but are known to train badly, each at a field path.

    (A patch size that does not divide the image is a validation error, so lint never sees one.)
    """
    warnings: list[Problem] = []
    model, loss = cfg.model, cfg.loss
    if model.contrastive.enabled:
        if loss.normalize and model.contrastive.feature_dim == 1:
            warnings.append(Problem("model.contrastive.feature_dim", (
                "L2-normalised features of dimension 1 are all ±1: every similarity is ±1/τ and the gradient "
                "through the normalisation is zero, so the encoder learns nothing from InfoNCE")))
        if loss.denominator == "negatives":
            warnings.append(Problem("loss.denominator", (
                "a negatives-only denominator lets the loss go below zero; without normalisation it is unbounded "
                "below and features grow until the loss overflows to NaN" if not loss.normalize else
                "a negatives-only denominator lets the loss go below zero (bounded here because features are "
                "normalised)")))
        if not loss.log_sum_exp:
            warnings.append(Problem("loss.log_sum_exp", (
                "exp(s/τ) overflows float32 once a similarity / τ passes about 88.7; the largest logit is each "
                "sample's own |f|²/τ, which the mask then multiplies by 0, and inf·0 is NaN; the log-sum-exp form "
                "gives the same loss without overflow")))
        if not loss.normalize and loss.temperature < 0.1:
            warnings.append(Problem("loss.temperature", (
                f"unnormalised features with τ = {loss.temperature:g}: similarities / τ grow without bound and "
                "overflow; normalise the features or raise τ")))
    if cfg.model.masking.ratio > 0:
        kept = int(cfg.num_patches * (1 - cfg.model.masking.ratio))
        if kept == 0:
            warnings.append(Problem("model.masking.ratio", (
                f"with {cfg.num_patches} patches, ratio {cfg.model.masking.ratio:g} keeps int(L·(1−r)) = 0 patches: "
                "the encoder sees only its class token")))
    decoders = model.decoders
    targets = [decoders.first, decoders.second][: decoders.count]
    if decoders.count == 2 and decoders.share and decoders.first.target == decoders.second.target:
        warnings.append(Problem("model.decoders.share", (
            "two shared decoders with the same target give identical outputs: the second only rescales the loss "
            f"(weights {decoders.first.weight:g} + {decoders.second.weight:g})")))
    for name, head in zip(("first", "second"), targets):
        if head.target in ("masked", "normalized") and cfg.model.masking.ratio == 0:
            warnings.append(Problem(f"model.decoders.{name}.target", (
                f"target '{head.target}' scores only masked patches, but the mask ratio is 0: this loss is always "
                "zero; use target 'all' or mask")))
    return warnings
