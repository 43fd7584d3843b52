"""Datasets and the episodic sampler.

Every dataset loads into one shape, :class:`LabelledImages` (float32 pixels in [0, 1], shape (N, C, H, W), and
integer labels), so the training loop never cares where the pictures came from. Nothing downloads at run time.
"""

from data.datasets import DATASETS, DatasetError, LabelledImages, class_sizes, load_dataset
from data.episodes import Episode, EpisodeSampler
from data.splits import Split, SplitError, check_split, split_dataset

__all__ = [
    "DATASETS",
    "DatasetError",
    "class_sizes",
    "Episode",
    "EpisodeSampler",
    "LabelledImages",
    "load_dataset",
    "Split",
    "SplitError",
    "check_split",
    "split_dataset",
]
