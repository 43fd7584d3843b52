"""Image bytes the notebook accepts: anything Pillow reads, within size caps."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096


class BadImage(ValueError):
    """Image bytes that are not a readable image, or too large."""


def check_image(data: bytes, what: str = "image") -> bytes:
    """The bytes, if Pillow reads them as an image within the size caps; else BadImage naming the problem."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadImage(f"{what}: {len(data) / 1e6:.1f} MB is over the {MAX_IMAGE_BYTES / 1e6:.0f} MB cap")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise BadImage(f"{what}: {image.width}x{image.height} pixels is over the cap")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, BadImage):
            raise
        raise BadImage(f"{what}: not a readable image ({exc})") from exc
    return data
