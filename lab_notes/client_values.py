"""What the tracking client accepts, checked at the door: metric keys and values, and images (numpy arrays or PIL
images) turned into PNG bytes. No torch here: a tensor is recognised by what it answers (`numel`, `size`,
`__len__`), never by its type."""

from __future__ import annotations

import io
import math
import numpy as np
from PIL import Image

from lab_notes.images import check_image

MAX_KEY_CHARS = 200
MAX_NAME_CHARS = 200  # a run's name column
# Steps are stored as SQL INTEGER, 32 bits on PostgreSQL: a step outside would fail the write of every point
# waiting with it, so it is refused at the door, on SQLite too (a notebook moves between the two).
STORED_STEPS = range(-2**31, 2**31)
LARGEST_STEP = STORED_STEPS[-1]


class BadValue(ValueError):
    """A metric, key or image the client refuses; the message names the key and the problem."""


def checked_key(key: object) -> str:
    """`key` if it is a non-empty string of at most MAX_KEY_CHARS characters; else BadValue saying which."""
    if not isinstance(key, str):
        raise BadValue(f"metric key {key!r}: a key must be a string, not {type(key).__name__}")
    if not key.strip():
        raise BadValue(f"metric key {key!r}: a key must not be empty (or only spaces)")
    if len(key) > MAX_KEY_CHARS:
        raise BadValue(f"metric key {key[:40]!r}…: {len(key)} characters is over the {MAX_KEY_CHARS}-character cap")
    if "\x00" in key:
        raise BadValue(f"metric key {key!r}: a key must not hold a NUL character (PostgreSQL cannot store one)")
    if not _encodable(key):
        raise BadValue(f"metric key {key!r}: not valid Unicode text (a lone surrogate), which cannot be stored")
    return key


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def checked_text(what: str, text: object, most: int | None = None) -> str:
    """`text` if it is a string the notebook can store in `what` (no NUL; at most `most` characters); else
    BadValue naming `what`."""
    if not isinstance(text, str):
        raise BadValue(f"{what}: a string, not {type(text).__name__}")
    if most is not None and len(text) > most:
        raise BadValue(f"{what} {text[:40]!r}…: {len(text):,} characters is over the {most}-character cap")
    if "\x00" in text:
        raise BadValue(f"{what}: must not hold a NUL character (PostgreSQL cannot store one)")
    if not _encodable(text):
        raise BadValue(f"{what}: not valid Unicode text (a lone surrogate), which cannot be stored")
    return text


def checked_step(step: int) -> int:
    """`step` if it is in the range the notebook stores; else BadValue saying so."""
    if not 0 <= step <= LARGEST_STEP:
        raise BadValue(f"step {step}: steps count from 0 up to {LARGEST_STEP:,} (stored as 32-bit integers); log a "
                       f"coarser count, such as thousands of samples")
    return step


def as_number(key: str, value: object) -> float:
    """`value` as a float (NaN and ±inf as they are): a number, or anything with one element (a 0-d or 1-element
    tensor or array, a numpy scalar). A string, or a tensor of several elements, is refused naming the key."""
    if type(value) is int:  # the common non-float: an epoch, a count
        try:
            return float(value)
        except OverflowError:
            raise BadValue(f"metric {key!r}: {str(value)[:40]}… is too large for a float") from None
    if isinstance(value, (str, bytes)):
        raise BadValue(f"metric {key!r}: {value!r} is text, not a number")
    elements = element_count(value)
    if elements is not None and elements != 1:
        raise BadValue(f"metric {key!r}: a value must be one number, not {elements} elements "
                       f"(of a {type(value).__name__}); log a reduction such as .mean() or each element under its "
                       f"own key")
    item = getattr(value, "item", None)
    if elements == 1 and callable(item):
        value = item()  # a 1-element tensor or array of any rank as its Python number
        if isinstance(value, (str, bytes)):  # a numpy array of text
            raise BadValue(f"metric {key!r}: {value!r} is text, not a number")
    try:
        return float(value)  # type: ignore[arg-type]  # anything with __float__
    except (TypeError, ValueError, OverflowError) as error:
        raise BadValue(f"metric {key!r}: {type(value).__name__} {str(value)[:60]!r} is not a number "
                       f"({error})") from None


def element_count(value: object) -> int | None:
    """How many elements a tensor-like holds (torch `.numel()`, numpy `.size`, a sequence's length); None for a
    plain scalar."""
    numel = getattr(value, "numel", None)
    if callable(numel):
        return int(numel())
    size = getattr(value, "size", None)
    if isinstance(size, int) and hasattr(value, "shape"):
        return size
    if hasattr(value, "__len__"):
        return len(value)
    return None


def image_png(key: str, image: object) -> bytes:
    """A numpy array (H, W) or (H, W, C) with C in 1, 3, 4, of uint8 (0..255) or float (0..1), or a PIL image, as
    PNG bytes; BadValue naming the key and what is wrong otherwise."""
    if isinstance(image, Image.Image) and image.mode in ("F", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        # numbers per pixel, not colours: convert() would clip them to 0..255 unscaled (0.5 -> black); they are
        # checked as an array is (floats 0..1, or refused naming the dtype)
        picture = Image.fromarray(_as_pixels(key, np.asarray(image)))
    elif isinstance(image, Image.Image):
        picture = image if image.mode in ("L", "RGB", "RGBA") else image.convert("RGB")
    else:
        picture = Image.fromarray(_as_pixels(key, image))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return check_image(buffer.getvalue(), f"image {key!r}")


def _as_pixels(key: str, image: object) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise BadValue(f"image {key!r}: a numpy array (H, W[, C]) or a PIL image, not {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise BadValue(f"image {key!r}: shape {image.shape} is not (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadValue(f"image {key!r}: shape {image.shape} has no pixels")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise BadValue(f"image {key!r}: float pixels must be finite (it has NaN or ±inf)")
        low, high = float(image.min()), float(image.max())
        if low < 0.0 or high > 1.0:
            raise BadValue(f"image {key!r}: float pixels must lie in 0..1, these span {low:g}..{high:g} (scale "
                           f"them, or pass uint8 0..255)")
        return (image * 255).round().astype(np.uint8)
    raise BadValue(f"image {key!r}: dtype {image.dtype} is not uint8 (0..255) or float (0..1)")
