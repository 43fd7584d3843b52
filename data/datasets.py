"""The dataset registry: procedural shapes, bundled digits, an image folder of the user's own, `.npz` arrays."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

BUNDLED_DIR = Path(__file__).resolve().parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SHAPE_NAMES = (
    "circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar", "hourglass", "frame",
)


class DatasetError(ValueError):
    """A dataset that cannot be loaded; the message names the path or array at fault."""


@dataclass(frozen=True)
class LabelledImages:
    """Images as float32 in [0, 1], shape (N, C, H, W); labels int64 (N,) in 0..len(class_names)-1."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    skipped: int = 0  # unreadable files left out (image folders only)
    skipped_files: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_dataset(
    name: str,
    *,
    image_size: int,
    channels: int,
    path: str | None = None,
    num_classes: int = 10,
    samples_per_class: int = 60,
    seed: int = 0,
) -> LabelledImages:
    """Load dataset `name` resized to `image_size` with `channels` (1 or 3) channels."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    loader = DATASETS[name]
    return loader(
        image_size=image_size, channels=channels, path=path, num_classes=num_classes,
        samples_per_class=samples_per_class, seed=seed,
    )


# --- procedural shapes -------------------------------------------------------------------------------------------


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[list[tuple[float, float]]]:
    """Polygons (in a 1-unit canvas scaled later) that draw one shape; rings and frames are two polygons."""

    def rotated(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]

    def regular(n: int, radius: float, phase: float = 0.0) -> list[tuple[float, float]]:
        return [(radius * math.cos(phase + 2 * math.pi * k / n), radius * math.sin(phase + 2 * math.pi * k / n))
                for k in range(n)]

    w = r * 0.35
    if kind == "circle":
        return [rotated(regular(40, r))]
    if kind == "square":
        return [rotated(regular(4, r, math.pi / 4))]
    if kind == "triangle":
        return [rotated(regular(3, r, -math.pi / 2))]
    if kind == "diamond":
        return [rotated([(0, -r), (r * 0.6, 0), (0, r), (-r * 0.6, 0)])]
    if kind == "cross":
        return [rotated([(-w, -r), (w, -r), (w, r), (-w, r)]), rotated([(-r, -w), (r, -w), (r, w), (-r, w)])]
    if kind == "hbar":
        return [rotated([(-r, -w), (r, -w), (r, w), (-r, w)])]
    if kind == "vbar":
        return [rotated([(-w, -r), (w, -r), (w, r), (-w, r)])]
    if kind == "hourglass":
        return [rotated([(-r, -r), (r, -r), (-r, r), (r, r)])]
    if kind in ("ring", "frame"):
        n, phase = (40, 0.0) if kind == "ring" else (4, math.pi / 4)
        return [rotated(regular(n, r, phase)), rotated(regular(n, r * 0.55, phase))]
    raise DatasetError(f"unknown shape {kind!r}")


def _draw_shape(kind: str, size: int, rng: np.random.Generator, colour: tuple[int, ...]) -> Image.Image:
    """One shape with random size, position and rotation, drawn 4x larger and downsampled for smooth edges."""
    big = size * 4
    image = Image.new("RGB", (big, big), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    r = rng.uniform(0.22, 0.38) * big
    cx, cy = rng.uniform(r, big - r), rng.uniform(r, big - r)
    angle = rng.uniform(-0.4, 0.4)
    polygons = _shape_polygon(kind, cx, cy, r, angle)
    draw.polygon(polygons[0], fill=colour)
    for hole in polygons[1:]:
        # Rings and frames cut a hole; crosses add their second bar.
        draw.polygon(hole, fill=colour if kind == "cross" else (0, 0, 0))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def load_shapes(*, image_size: int, channels: int, num_classes: int, samples_per_class: int, seed: int,
                **_: object) -> LabelledImages:
    """Deterministic procedural shapes: class = shape kind; size, place, tilt, colour and noise vary per sample."""
    if not 2 <= num_classes <= len(SHAPE_NAMES):
        raise DatasetError(f"shapes has 2..{len(SHAPE_NAMES)} classes, not {num_classes}")
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label, kind in enumerate(SHAPE_NAMES[:num_classes]):
        for _sample in range(samples_per_class):
            colour = tuple(int(v) for v in rng.integers(120, 256, size=3)) if channels == 3 else (255, 255, 255)
            pixels = np.asarray(_draw_shape(kind, image_size, rng, colour), dtype=np.float32) / 255.0
            pixels = pixels + rng.normal(0.0, 0.03, size=pixels.shape).astype(np.float32)
            images.append(_to_channels(np.clip(pixels, 0.0, 1.0), channels))
            labels.append(label)
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), list(SHAPE_NAMES[:num_classes]))


# --- arrays, bundled digits, folders -----------------------------------------------------------------------------


def _to_channels(hwc: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, C) float in [0, 1] -> (channels, H, W)."""
    if hwc.ndim == 2:
        hwc = hwc[:, :, None]
    if hwc.shape[2] == channels:
        out = hwc
    elif channels == 1:
        out = hwc[:, :, :3].mean(axis=2, keepdims=True)
    else:
        out = np.repeat(hwc[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(out.transpose(2, 0, 1), dtype=np.float32)


def _resize(hwc: np.ndarray, size: int) -> np.ndarray:
    """Resize one float image (H, W[, C]) in [0, 1] to size x size with Pillow's bilinear filter, per channel."""
    if hwc.shape[0] == size and hwc.shape[1] == size:
        return hwc
    planes = hwc[:, :, None] if hwc.ndim == 2 else hwc
    resized = [np.asarray(Image.fromarray(planes[:, :, c].astype(np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR)) for c in range(planes.shape[2])]
    return np.clip(np.stack(resized, axis=2), 0.0, 1.0)


def _from_arrays(images: np.ndarray, labels: np.ndarray, *, image_size: int, channels: int, source: str,
                 full_scale: float | None = None) -> LabelledImages:
    """Validate raw arrays, scale to [0, 1], resize and relabel to 0..C-1 (keeping the original label names).

    full_scale: the value that means white; by default 255 for uint8, else 1 unless the data exceed it (then max).
    """
    if images.ndim not in (3, 4):
        raise DatasetError(f"{source}: 'images' must be (N,H,W), (N,H,W,C) or (N,C,H,W), got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(f"{source}: 'labels' must be 1-D with one label per image, got shape {labels.shape}")
    if len(images) == 0:
        raise DatasetError(f"{source}: no images")
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[3] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)  # (N,C,H,W) -> (N,H,W,C)
    data = images.astype(np.float32)
    if not np.isfinite(data).all():
        raise DatasetError(f"{source}: 'images' holds NaN or infinite values")
    if full_scale is None:
        full_scale = 255.0 if images.dtype == np.uint8 else max(float(data.max()), 1.0)
    data = np.clip(data / full_scale, 0.0, 1.0)
    names, relabelled = np.unique(labels, return_inverse=True)
    stacked = np.stack([_to_channels(_resize(img, image_size), channels) for img in data])
    return LabelledImages(stacked, relabelled.astype(np.int64), [str(n) for n in names])


def load_npz(*, path: str | None, image_size: int, channels: int, full_scale: float | None = None,
             **_: object) -> LabelledImages:
    """`.npz` with arrays `images` and `labels` (integers or strings)."""
    if not path:
        raise DatasetError("data.path: the npz dataset needs the path of a .npz file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = {"images", "labels"} - set(arrays.files)
            if missing:
                raise DatasetError(f"{path}: missing array(s) {', '.join(sorted(missing))}; found {arrays.files}")
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from exc
    return _from_arrays(images, labels, image_size=image_size, channels=channels, source=path,
                        full_scale=full_scale)


def load_digits(*, image_size: int, channels: int, **_: object) -> LabelledImages:
    """The bundled UCI handwritten digits (see data/DIGITS_SOURCE.md)."""
    return load_npz(path=str(BUNDLED_DIR / "digits.npz"), image_size=image_size, channels=channels,
                    full_scale=16.0)  # the UCI bitmaps count on-pixels per 4x4 block: 0..16


def load_folder(*, path: str | None, image_size: int, channels: int, **_: object) -> LabelledImages:
    """One sub-folder per class; files Pillow cannot read are skipped and counted, never fatal."""
    if not path:
        raise DatasetError("data.path: the folder dataset needs a folder with one sub-folder per class")
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"data.path: {path} is not a folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    images: list[np.ndarray] = []
    names: list[str] = []
    labels, skipped = [], []
    for class_dir in class_dirs:
        count_before = len(images)
        for file in sorted(f for f in class_dir.rglob("*") if f.is_file()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as opened:
                    opened.load()
                    picture = opened.convert("RGB" if channels == 3 else "L")
            except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
                skipped.append(str(file))
                continue
            picture = picture.resize((image_size, image_size), Image.Resampling.BILINEAR)
            images.append(_to_channels(np.asarray(picture, dtype=np.float32) / 255.0, channels))
            labels.append(len(names))
        if len(images) > count_before:
            names.append(class_dir.name)
    if len(names) < 2:
        raise DatasetError(f"data.path: {path} needs at least two class sub-folders with readable images, "
                           f"found {len(names)} ({len(skipped)} unreadable files skipped)")
    return LabelledImages(np.stack(images), np.asarray(labels, dtype=np.int64), names, len(skipped), skipped)


def class_sizes(name: str, *, path: str | None = None, num_classes: int = 10, samples_per_class: int = 60
                ) -> list[int]:
    """Images per class without decoding a picture (cheap enough to check a split when a run is submitted).

    A folder counts its files with image suffixes, so a class whose files turn out unreadable can still fall
    short when the run loads it; the sampler then names the field, as before.
    """
    if name == "shapes":
        return [samples_per_class] * num_classes
    if name == "digits":
        path = str(BUNDLED_DIR / "digits.npz")
    if name in ("digits", "npz"):
        try:
            with np.load(path or "", allow_pickle=False) as arrays:
                labels = arrays["labels"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"data.path: {path} is not a .npz file with a 'labels' array ({exc})") from exc
        return np.unique(labels, return_counts=True)[1].tolist()
    if name == "folder":
        root = Path(path or "")
        if not root.is_dir():
            raise DatasetError(f"data.path: {path} is not a folder")
        classes = tuple((d, d.stat().st_mtime_ns) for d in sorted(root.iterdir())
                        if d.is_dir() and not d.name.startswith("."))
        sizes = [n for n in _counted_files(classes) if n]
        if len(sizes) < 2:
            raise DatasetError(f"data.path: '{root.name}' has {len(sizes)} class sub-folders with images; a dataset "
                               "needs at least two (one sub-folder per class)")
        return sizes
    raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")


@functools.lru_cache(maxsize=64)
def _counted_files(classes: tuple[tuple[Path, int], ...]) -> tuple[int, ...]:
    """Image files per class folder; cached by each folder's modification time, because the form validates (and
    so counts) on every change of any field."""
    return tuple(sum(1 for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
                 for folder, _ in classes)


DATASETS: dict[str, Callable[..., LabelledImages]] = {
    "shapes": load_shapes,
    "digits": load_digits,
    "folder": load_folder,
    "npz": load_npz,
}
