"""MAE random masking and the patch <-> image reshapes the reconstruction losses and figures need."""

from __future__ import annotations

import torch


def random_masking(x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None,
                   noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random `int(L*(1-mask_ratio))` tokens per sample, as in MAE.

    x: (B, L, D) patch tokens. Returns kept (B, keep, D) in shuffled order, mask (B, L) with 1 = removed and
    0 = kept, in the original patch order, and ids_restore (B, L) that undoes the shuffle.
    noise: (B, L) uniform draws to rank the patches by, when the caller drew them (a process holding a slice of
    an episode draws the whole episode's and keeps its rows, so its masks are the single-process run's).
    """
    batch, length, dim = x.shape
    keep = int(length * (1 - mask_ratio))
    if noise is None:
        noise_device = generator.device if generator is not None else x.device
        noise = torch.rand(batch, length, generator=generator, device=noise_device)
    noise = noise.to(x.device)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))
    mask = torch.ones(batch, length, device=x.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return kept, mask, ids_restore


def unshuffle(tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """(B, L, D) tokens in shuffled order [kept..., mask tokens...] -> original patch order."""
    return torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, tokens.shape[2]))


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, L, p*p*C), patches row by row, pixels (p, p, C) inside each patch (MAE's layout)."""
    b, c, h, w = images.shape
    gh, gw = h // patch_size, w // patch_size
    x = images.reshape(b, c, gh, patch_size, gw, patch_size)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(b, gh * gw, patch_size * patch_size * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """(B, L, p*p*C) -> (B, C, H, W); the inverse of `patchify` for square images."""
    b, length, _ = patches.shape
    side = int(round(length ** 0.5))
    x = patches.reshape(b, side, side, patch_size, patch_size, channels)
    return torch.einsum("nhwpqc->nchpwq", x).reshape(b, channels, side * patch_size, side * patch_size)
