"""MAE-style decoders: none, one, or two fed the same encoder output, shared (one module used twice) or separate."""

from __future__ import annotations

from typing import Any, Literal

import torch
from timm.models.vision_transformer import Block
from torch import nn

from engine.models.masking import unshuffle
from engine.models.vit import init_position_embedding, init_vit_weights


class MaskedDecoder(nn.Module):
    """Encoder tokens (B, 1 + keep, D_enc) + ids_restore (B, L) -> predicted patches (B, L, p*p*C).

    Mask tokens stand in for removed patches; a position embedding (MAE's fixed sin-cos, or learnable as timm's
    default) tells the decoder where each is.
    """

    def __init__(self, *, grid_side: int, encoder_dim: int, embed_dim: int, depth: int, num_heads: int,
                 patch_pixels: int, pos_embed: Literal["learnable", "sincos"] = "sincos",
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.embed = nn.Linear(encoder_dim, embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_side * grid_side + 1, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.pred = nn.Linear(embed_dim, patch_pixels)
        self.apply(init_vit_weights)
        nn.init.normal_(self.mask_token, std=0.02)
        init_position_embedding(self.pos_embed, pos_embed, grid_side)

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        batch, length = ids_restore.shape
        missing = length + 1 - x.shape[1]
        patches = torch.cat([x[:, 1:], self.mask_token.expand(batch, missing, -1)], dim=1)
        x = torch.cat([x[:, :1], unshuffle(patches, ids_restore)], dim=1) + self.pos_embed
        return self.pred(self.norm(self.blocks(x)))[:, 1:]


class Decoders(nn.Module):
    """`count` decoders reading the same input; with `share`, one module is called for each of them."""

    def __init__(self, count: int, share: bool, **decoder_args: Any) -> None:
        super().__init__()
        distinct = 1 if (share and count) else count
        self.modules_list = nn.ModuleList([MaskedDecoder(**decoder_args) for _ in range(distinct)])
        self.route = [0] * count if share else list(range(count))

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> list[torch.Tensor]:
        """One (B, L, p*p*C) prediction per decoder, in order (decoder A, decoder B)."""
        return [self.modules_list[i](tokens, ids_restore) for i in self.route]
