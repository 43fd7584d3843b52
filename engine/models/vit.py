"""The ViT encoder, built from timm's `PatchEmbed` and `Block`, with optional MAE masking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from timm.layers import PatchEmbed, trunc_normal_
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from engine.models.masking import random_masking


def sincos_position_embedding(grid_side: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding (1, 1 + side², dim); the class token's row is zero, as in MAE."""
    grid = build_sincos2d_pos_embed([grid_side, grid_side], dim=dim)
    return torch.cat([torch.zeros(1, dim), grid], dim=0).unsqueeze(0)


def init_position_embedding(pos_embed: nn.Parameter, kind: Literal["learnable", "sincos"], grid_side: int) -> None:
    """timm's init for a learnable embedding (truncated normal, std 0.02); a frozen sin-cos table otherwise."""
    with torch.no_grad():
        if kind == "learnable":
            trunc_normal_(pos_embed, std=0.02)
        else:
            pos_embed.copy_(sincos_position_embedding(grid_side, pos_embed.shape[-1]))
    pos_embed.requires_grad_(kind == "learnable")


def init_vit_weights(module: nn.Module) -> None:
    """timm's ViT init: linear weights truncated normal (std 0.02), biases zero, LayerNorm to identity."""
    if isinstance(module, nn.Linear):
        trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@dataclass
class EncoderOutput:
    """tokens (B, 1 + keep, D): class token then the kept patches (shuffled order when masked);
    mask (B, L): 1 = removed; ids_restore (B, L): undoes the shuffle."""

    tokens: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor

    @property
    def embedding(self) -> torch.Tensor:
        """(B, D): the class token, what the heads read."""
        return self.tokens[:, 0]


class ViTEncoder(nn.Module):
    def __init__(self, *, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
                 num_heads: int, mlp_ratio: float, pos_embed: Literal["learnable", "sincos"]) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        self.grid_side = img_size // patch_size
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim)
        self.apply(init_vit_weights)
        nn.init.normal_(self.cls_token, std=1e-6)
        init_position_embedding(self.pos_embed, pos_embed, self.grid_side)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def forward(self, images: torch.Tensor, mask_ratio: float = 0.0, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None) -> EncoderOutput:
        """images (B, C, H, W) -> EncoderOutput; with mask_ratio > 0 only the kept patches are encoded (MAE),
        ranked by `noise` (B, L) when given (see `random_masking`)."""
        x = self.patch_embed(images) + self.pos_embed[:, 1:]
        batch, length, _ = x.shape
        if mask_ratio > 0:
            x, mask, ids_restore = random_masking(x, mask_ratio, generator, noise)
        else:
            mask = torch.zeros(batch, length, device=x.device)
            ids_restore = torch.arange(length, device=x.device).expand(batch, length)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1)
        x = self.norm(self.blocks(torch.cat([cls, x], dim=1)))
        return EncoderOutput(x, mask, ids_restore)
