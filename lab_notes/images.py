"""Image bytes the notebook accepts: PNG, JPEG, GIF or WebP that decode completely, within size caps. Only these
four decoders are ever tried (a file claiming to be EPS never reaches Ghostscript), and every pixel is decoded
once on the way in, so an image that would fail to render later is refused at the door."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 4096 * 4096
BROWSER_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


class BadImage(ValueError):
    """Image bytes that are not a readable image of an allowed format, or too large."""


def check_image(data: bytes, what: str = "image") -> bytes:
    """The bytes, if they are a PNG, JPEG, GIF or WebP that decodes completely within the caps; else BadImage
    naming the problem."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadImage(f"{what}: {len(data) / 1e6:.1f} MB is over the {MAX_IMAGE_BYTES / 1e6:.0f} MB cap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=BROWSER_FORMATS) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise BadImage(f"{what}: {image.width}x{image.height} pixels is over the "
                                   f"{MAX_IMAGE_PIXELS:,}-pixel cap")
                image.load()  # every pixel: truncated or corrupt data fails here, not on the page
    except BadImage:
        raise
    except UnidentifiedImageError as exc:
        raise BadImage(f"{what}: not a readable image (not a PNG, JPEG, GIF or WebP image)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise BadImage(f"{what}: not a readable image (the image data is damaged: {exc})") from exc
    return data
