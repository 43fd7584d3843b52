"""Which classes and images a run trains on, and which it is judged on.

Every dataset splits the same way: `holdout_classes` whole classes never seen in training (the few-shot test), and
within each training class a fraction `holdout_images` of its images kept apart (the seen-class test), so that no
number the notebook reports is measured on an image the encoder was trained on. Both are pure functions of the
labels and a seed, so a run's split can be recomputed from its config and is written down with its results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


class SplitError(ValueError):
    """A split that cannot give N-way episodes; the message starts with the config field to change."""


@dataclass(frozen=True)
class Split:
    """Class ids and image indices (into the dataset) for each use. With `holdout_classes = 0` the evaluation
    classes are the training classes and their held-out images stand in for the held-out classes."""

    train_classes: np.ndarray
    eval_classes: np.ndarray
    train_images: np.ndarray  # what training episodes draw from
    seen_images: np.ndarray  # held-out images of the training classes
    eval_images: np.ndarray  # what held-out evaluation episodes draw from

    @property
    def held_out_classes(self) -> bool:
        return not np.array_equal(self.train_classes, self.eval_classes)


def held_out_class_count(holdout_classes: int | None, n_way: int) -> int:
    """`None` means the default: exactly one episode's worth of classes (n_way) kept out of training."""
    return n_way if holdout_classes is None else holdout_classes


def held_out_image_count(class_size: int, fraction: float, per_episode: int) -> int:
    """A `fraction` of a class's images, but never fewer than one episode's worth (k_shot + q_queries), so a
    modest dataset still gets a seen-class test; 0 when the fraction is 0."""
    return max(int(round(class_size * fraction)), per_episode) if fraction > 0 else 0


def check_split(class_sizes: Sequence[int], *, n_way: int, k_shot: int, q_queries: int,
                holdout_classes: int | None, holdout_images: float) -> None:
    """SplitError naming the field when the split cannot give training and evaluation episodes.

    Checked against the smallest class, whichever classes the seed holds out, so the answer does not depend on
    the seed (and a submit-time check never disagrees with the run).
    """
    per_class = k_shot + q_queries
    classes = len(class_sizes)
    held = held_out_class_count(holdout_classes, n_way)
    if 0 < held < n_way:
        raise SplitError(f"data.holdout_classes: {held} held-out classes cannot make {n_way}-way evaluation "
                         f"episodes; hold out at least n_way = {n_way}, or 0 to evaluate on held-out images of "
                         "the training classes")
    if classes - held < n_way:
        raise SplitError(f"data.holdout_classes: holding out {held} of {classes} classes leaves {classes - held} "
                         f"for training, fewer than n_way = {n_way}; lower data.n_way or data.holdout_classes")
    if held == 0 and holdout_images == 0:
        raise SplitError("data.holdout_images: with no held-out classes, evaluation needs held-out images of the "
                         "training classes; set it above 0 (0.2 keeps a fifth of each class apart)")
    smallest = min(class_sizes)
    kept_apart = held_out_image_count(smallest, holdout_images, per_class)
    if smallest - kept_apart < per_class:
        raise SplitError(f"data.holdout_images: keeping {kept_apart} of the smallest class's {smallest} images "
                         f"apart (at least k_shot + q_queries = {per_class} for a seen-class episode) leaves "
                         f"{smallest - kept_apart} to train on, fewer than {per_class}; use more images per class, "
                         "fewer shots, or 0 to skip the seen-class test")


def split_dataset(labels: np.ndarray, *, n_way: int, k_shot: int, q_queries: int, holdout_classes: int | None,
                  holdout_images: float, seed: int) -> Split:
    """The run's split of a labelled set (labels 0..C-1), reproducible from `seed`."""
    labels = np.asarray(labels)
    classes = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels, minlength=classes)
    check_split(sizes.tolist(), n_way=n_way, k_shot=k_shot, q_queries=q_queries,
                holdout_classes=holdout_classes, holdout_images=holdout_images)
    rng = np.random.default_rng(seed)
    held = held_out_class_count(holdout_classes, n_way)
    order = rng.permutation(classes)
    eval_classes = np.sort(order[:held]) if held else np.arange(classes)
    train_classes = np.sort(order[held:]) if held else np.arange(classes)
    train_images, seen_images = [], []
    for c in train_classes:
        members = rng.permutation(np.flatnonzero(labels == c))
        kept_apart = held_out_image_count(len(members), holdout_images, k_shot + q_queries)
        seen_images.append(members[:kept_apart])
        train_images.append(members[kept_apart:])
    seen = np.sort(np.concatenate(seen_images)).astype(np.int64)
    eval_images = np.flatnonzero(np.isin(labels, eval_classes)) if held else seen
    return Split(train_classes, eval_classes, np.sort(np.concatenate(train_images)).astype(np.int64), seen,
                 eval_images.astype(np.int64))
