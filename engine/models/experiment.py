"""The whole experiment model: encoder, contrastive head, discriminator and decoders, built from a RunConfig.

`forward` runs in named stages and returns every loss term and what the figures need (prediction, mask),
like mae's `loss, pred, mask`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import RunConfig
from engine.distributed import EpisodeSlice
from engine.losses import accuracy, discriminator_loss, info_nce, reconstruction_errors
from engine.models.decoders import Decoders
from engine.models.heads import ContrastiveHead, Discriminator, class_prototypes
from engine.models.masking import patchify
from engine.models.vit import ViTEncoder

DECODER_NAMES = ("recon_a", "recon_b")


@dataclass
class StepOutput:
    """total: weighted scalar to minimise; terms: each unweighted loss (float32 scalars); accuracy: disc and
    prototype accuracies (no gradient); predictions: one (b, L, p*p*C) per decoder; mask (b, L); features (B, F);
    embedding (B, D), the class token. Losses, accuracies, features and embedding cover the whole episode (B
    images); predictions and mask only the rows this process encoded (b = B with one process)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    accuracy: dict[str, torch.Tensor] = field(default_factory=dict)
    predictions: list[torch.Tensor] = field(default_factory=list)
    mask: torch.Tensor | None = None
    features: torch.Tensor | None = None
    embedding: torch.Tensor | None = None


class ExperimentModel(nn.Module):
    def __init__(self, cfg: RunConfig) -> None:
        super().__init__()
        self.cfg = cfg
        enc, data, dec = cfg.model.encoder, cfg.data, cfg.model.decoders
        self.encoder = ViTEncoder(img_size=data.image_size, patch_size=enc.patch_size, in_chans=data.channels,
                                  embed_dim=enc.embed_dim, depth=enc.depth, num_heads=enc.num_heads,
                                  mlp_ratio=enc.mlp_ratio, pos_embed=enc.pos_embed)
        contrastive = cfg.model.contrastive
        self.head = (ContrastiveHead(enc.embed_dim, contrastive.feature_dim, contrastive.hidden_dim)
                     if contrastive.enabled else nn.Identity())
        self.discriminator = (Discriminator(enc.embed_dim, cfg.model.discriminator.hidden_dim)
                              if cfg.model.discriminator.enabled else nn.Identity())
        self.decoders = Decoders(dec.count, dec.share, grid_side=self.encoder.grid_side, encoder_dim=enc.embed_dim,
                                 embed_dim=dec.embed_dim, depth=dec.depth, num_heads=dec.num_heads,
                                 patch_pixels=enc.patch_size ** 2 * data.channels, pos_embed=dec.pos_embed)

    def forward(self, images: torch.Tensor, labels: torch.Tensor, is_query: torch.Tensor,
                part: EpisodeSlice | None = None) -> StepOutput:
        """images (b, C, H, W): the episode's rows `part` (all B of them by default); labels (B,) episode-local
        0..N-1 and is_query (B,) bool (the rest is support) for the whole episode.

        With a part of a several-process run, each process encodes its rows, the class tokens are gathered (with
        gradient) so InfoNCE and the discriminator see every pair of the episode, and the reconstruction errors
        are summed over processes before dividing: every loss is the one-process loss."""
        cfg = self.cfg
        part = part or EpisodeSlice.whole(len(labels))
        encoded = self.encoder(images, cfg.model.masking.ratio, noise=self._mask_noise(part, images.device))
        embedding = part.gather(encoded.embedding)
        out = StepOutput(total=torch.zeros((), device=images.device), mask=encoded.mask, embedding=embedding)
        self._contrast(out, embedding, labels)
        self._discriminate(out, embedding, labels, is_query)
        self._reconstruct(out, encoded.tokens, encoded.ids_restore, images, part)
        points = self.judged_points(embedding, out.features)
        out.accuracy["prototype"] = prototype_accuracy(points[~is_query], labels[~is_query], points[is_query],
                                                       labels[is_query], cfg.data.n_way)
        return out

    def _mask_noise(self, part: EpisodeSlice, device: torch.device) -> torch.Tensor | None:
        """(b, L) uniform noise that ranks this part's patches for masking. Every process draws the whole
        episode's (B, L), as one process would, and keeps its rows: the same random stream on every rank, so the
        same masks as a single-process run with the same seed."""
        if not self.cfg.model.masking.ratio:
            return None
        return torch.rand(part.size, self.encoder.num_patches, device=device)[part.rows]

    def represent(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The view evaluation judges: every patch seen (no masking, whatever the training ratio), returning
        (B, D) class-token embeddings and (B, F) the points judges compare (see `judged_points`)."""
        embedding = self.encoder(images, 0.0).embedding
        features = self.head(embedding) if self.cfg.model.contrastive.enabled else None
        return embedding, self.judged_points(embedding, features)

    def judged_points(self, embedding: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """The space InfoNCE shapes: its features (L2-normalised when the loss normalises them), or the
        embedding itself when there is no contrastive head. Float32, without gradient."""
        if features is None:
            return embedding.detach().float()
        points = features.detach().float()
        return F.normalize(points, dim=1) if self.cfg.loss.normalize else points

    def discriminate(self, support: torch.Tensor, support_labels: torch.Tensor, queries: torch.Tensor
                     ) -> torch.Tensor:
        """(Q, N) scores of query embeddings against the support's class prototypes."""
        prototypes = class_prototypes(support, support_labels, self.cfg.data.n_way)
        return self.discriminator(queries, prototypes)

    def _contrast(self, out: StepOutput, embedding: torch.Tensor, labels: torch.Tensor) -> None:
        if not self.cfg.model.contrastive.enabled:
            return
        loss_cfg = self.cfg.loss
        out.features = self.head(embedding)
        out.terms["contrastive"] = info_nce(out.features, labels, temperature=loss_cfg.temperature,
                                            denominator=loss_cfg.denominator, normalize=loss_cfg.normalize,
                                            base_temperature=loss_cfg.base_temperature,
                                            log_sum_exp=loss_cfg.log_sum_exp, no_positive=loss_cfg.no_positive)
        out.total = out.total + loss_cfg.contrastive_weight * out.terms["contrastive"]

    def _discriminate(self, out: StepOutput, embedding: torch.Tensor, labels: torch.Tensor,
                      is_query: torch.Tensor) -> None:
        disc = self.cfg.model.discriminator
        if not disc.enabled:
            return
        # Detached, the discriminator is a probe: it learns to read frozen features and its loss never reaches
        # the encoder. Joint, its accuracy is part of what the encoder is trained to raise.
        seen = embedding.detach() if disc.detach else embedding
        scores = self.discriminate(seen[~is_query], labels[~is_query], seen[is_query])
        out.terms["disc"] = discriminator_loss(scores, labels[is_query])
        out.total = out.total + self.cfg.loss.discriminator_weight * out.terms["disc"]
        out.accuracy["discriminator"] = accuracy(scores.detach(), labels[is_query])

    def _reconstruct(self, out: StepOutput, tokens: torch.Tensor, ids_restore: torch.Tensor,
                     images: torch.Tensor, part: EpisodeSlice) -> None:
        dec = self.cfg.model.decoders
        if not dec.count:
            return
        target_patches = patchify(images, self.cfg.model.encoder.patch_size)
        assert out.mask is not None  # forward set it from the encoder
        out.predictions = self.decoders(tokens, ids_restore)
        for name, head, pred in zip(DECODER_NAMES, (dec.first, dec.second), out.predictions):
            # the mean over the whole episode's scored patches, not the mean of each process's means
            errors = reconstruction_errors(pred, target_patches, out.mask, head.target)
            out.terms[name] = part.sum(errors.summed) / part.sum(errors.scored).clamp_min(1.0)
            out.total = out.total + head.weight * out.terms[name]


@torch.no_grad()
def prototype_accuracy(support: torch.Tensor, support_labels: torch.Tensor, queries: torch.Tensor,
                       query_labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Nearest class mean: each query (Q, F) goes to the closest support class mean."""
    prototypes = class_prototypes(support, support_labels, n_way)
    return accuracy(-torch.cdist(queries, prototypes), query_labels)
