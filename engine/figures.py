"""Reconstruction figures as PNG: original | masked | decoder A | decoder B, one row per image."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

TILE = 64  # pixels a side for each small image, so 16-px inputs stay readable
HEADER = 14
GAP = 2


def _tile(chw: np.ndarray) -> Image.Image:
    """(C, H, W) float in [0, 1] -> a TILE x TILE RGB image, nearest-neighbour so pixels stay crisp."""
    pixels = np.clip(chw, 0.0, 1.0)
    hwc = np.repeat(pixels.transpose(1, 2, 0), 3, axis=2) if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    return Image.fromarray((hwc * 255).round().astype(np.uint8), "RGB").resize((TILE, TILE), Image.Resampling.NEAREST)


def reconstruction_png(columns: list[tuple[str, np.ndarray]]) -> bytes:
    """columns: (title, images (n, C, H, W) in [0, 1]); all with the same n. Returns PNG bytes."""
    rows = columns[0][1].shape[0]
    width = len(columns) * (TILE + GAP) - GAP
    height = HEADER + rows * (TILE + GAP) - GAP
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, (title, images) in enumerate(columns):
        x = c * (TILE + GAP)
        draw.text((x + 2, 1), title, fill=(40, 40, 40))
        for r in range(rows):
            canvas.paste(_tile(images[r]), (x, HEADER + r * (TILE + GAP)))
    out = io.BytesIO()
    canvas.save(out, format="PNG")
    return out.getvalue()
