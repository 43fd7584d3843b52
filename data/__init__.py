"""Datasets and the episodic sampler.

Every dataset loads into one shape, :class:`LabelledImages` (float32 pixels in [0, 1], shape (N, C, H, W), and
integer labels), so the training loop never cares where the pictures came from. Nothing downloads at run time.
"""

from data.datasets import DATASETS, DatasetError, LabelledImages, load_dataset
from data.episodes import Episode, EpisodeSampler, split_classes

__all__ = [
    "DATASETS",
    "DatasetError",
    "Episode",
    "EpisodeSampler",
    "LabelledImages",
    "load_dataset",
    "split_classes",
]
