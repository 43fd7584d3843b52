"""The contrastive projection head and the discriminator that scores (query, class prototype) pairs."""

from __future__ import annotations

import torch
from torch import nn

from engine.models.vit import init_vit_weights


class ContrastiveHead(nn.Module):
    """(B, D) embeddings -> (B, feature_dim) features for InfoNCE; linear, or an MLP when hidden_dim > 0."""

    def __init__(self, embed_dim: int, feature_dim: int, hidden_dim: int = 0) -> None:
        super().__init__()
        self.project: nn.Module
        if hidden_dim:
            self.project = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.GELU(),
                                         nn.Linear(hidden_dim, feature_dim))
        else:
            self.project = nn.Linear(embed_dim, feature_dim)
        self.apply(init_vit_weights)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.project(embedding)


def class_prototypes(embedding: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """(S, D) support embeddings with labels in 0..N-1 -> (N, D) class means."""
    sums = torch.zeros(n_way, embedding.shape[1], device=embedding.device, dtype=embedding.dtype)
    sums.index_add_(0, labels, embedding)
    counts = torch.bincount(labels, minlength=n_way).clamp_min(1).to(embedding.dtype)
    return sums / counts[:, None]


class Discriminator(nn.Module):
    """Scores how well a query matches each class prototype: (Q, D), (N, D) -> (Q, N) logits."""

    def __init__(self, embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(4 * embed_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, 1))
        self.apply(init_vit_weights)

    def forward(self, queries: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
        q = queries[:, None, :].expand(-1, prototypes.shape[0], -1)
        p = prototypes[None, :, :].expand(queries.shape[0], -1, -1)
        pairs = torch.cat([q, p, (q - p).abs(), q * p], dim=-1)
        return self.score(pairs).squeeze(-1)
