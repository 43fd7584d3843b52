"""The dataset on the device and its episodes: the training sampler, the evaluator over the images training never
sees, and each episode's way onto the device in two halves (the host's, done ahead by the prefetch thread while the
previous step trains, and the device's)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from data import Episode, EpisodeSampler, SplitError, load_dataset, split_dataset
from engine.config import RunConfig, resolve_data_path
from engine.evaluation import Evaluator


@dataclass
class EpisodeSource:
    """The dataset on the device, the training sampler, and the evaluator over the images training never sees."""

    images: torch.Tensor
    train: EpisodeSampler
    evaluator: Evaluator

    def batch(self, sampler: EpisodeSampler) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.on_device(self.staged(sampler.sample()))

    def staged(self, episode: Episode) -> list[torch.Tensor]:
        """The host's share, done ahead on the prefetch thread in training: on CUDA pinned, so the copy never waits."""
        parts = [torch.from_numpy(a) for a in (episode.indices, episode.labels, episode.is_query)]
        return [p.pin_memory() for p in parts] if self.images.is_cuda else parts

    def on_device(self, staged: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        indices, labels, is_query = (p.to(self.images.device, non_blocking=True) for p in staged)
        return self.images[indices], labels, is_query


def load_episodes(cfg: RunConfig, device: torch.device) -> EpisodeSource:
    d = cfg.data
    path = str(resolve_data_path(d.path)) if d.path else None
    dataset = load_dataset(d.dataset, image_size=d.image_size, channels=d.channels, path=path,
                           num_classes=d.num_classes, samples_per_class=d.samples_per_class, seed=d.seed)
    try:
        split = split_dataset(dataset.labels, n_way=d.n_way, k_shot=d.k_shot, q_queries=d.q_queries,
                              holdout_classes=d.holdout_classes, holdout_images=d.holdout_images, seed=d.seed)
    except SplitError as error:
        if not dataset.skipped:
            raise
        # the submit-time check counted files; some turned out unreadable, which is the real cause
        raise SplitError(f"{error} ({dataset.skipped} unreadable image files in data.path were skipped, e.g. "
                         f"{dataset.skipped_files[0]})") from None
    sampler = EpisodeSampler(dataset.labels, split.train_classes, pool=split.train_images, n_way=d.n_way,
                             k_shot=d.k_shot, q_queries=d.q_queries, seed=cfg.runtime.seed)
    images = torch.from_numpy(dataset.images).to(device)
    return EpisodeSource(images, sampler, Evaluator(cfg, images, dataset, split))
