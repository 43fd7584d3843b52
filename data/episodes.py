"""N-way K-shot episodes with Q queries per class, seeded and resumable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Episode:
    """Indices into the dataset, class by class: K support then Q queries for each of the N classes.

    `labels` are episode-local (0..N-1); `is_query` marks the Q queries of each class; `classes` are the dataset
    classes drawn, in episode-label order.
    """

    indices: np.ndarray  # (N*(K+Q),) int64
    labels: np.ndarray  # (N*(K+Q),) int64 in 0..N-1
    is_query: np.ndarray  # (N*(K+Q),) bool
    classes: np.ndarray  # (N,) int64


class EpisodeSampler:
    """Draws episodes from `classes` of a labelled set, using only the images in `pool` (all when None); its
    state can be saved and restored for exact resume."""

    def __init__(self, labels: np.ndarray, classes: np.ndarray, *, n_way: int, k_shot: int, q_queries: int,
                 seed: int, pool: np.ndarray | None = None) -> None:
        self.n_way, self.k_shot, self.q_queries = n_way, k_shot, q_queries
        self.classes = np.asarray(classes)
        pool = np.arange(len(labels)) if pool is None else np.asarray(pool)
        self.by_class = {int(c): pool[labels[pool] == c] for c in self.classes}
        per_episode = k_shot + q_queries
        if len(self.classes) < n_way:
            raise ValueError(f"data.n_way: {n_way} classes per episode but only {len(self.classes)} available")
        short = [c for c, idx in self.by_class.items() if len(idx) < per_episode]
        if short:
            raise ValueError(f"data.k_shot: k_shot + q_queries = {per_episode} images per class, but class(es) "
                             f"{short[:5]} have fewer")
        self.rng = np.random.default_rng(seed)

    def sample(self) -> Episode:
        per_class = self.k_shot + self.q_queries
        chosen = self.rng.choice(self.classes, size=self.n_way, replace=False)
        indices = np.concatenate([self.rng.choice(self.by_class[int(c)], size=per_class, replace=False)
                                  for c in chosen])
        labels = np.repeat(np.arange(self.n_way), per_class)
        is_query = np.tile(np.arange(per_class) >= self.k_shot, self.n_way)
        return Episode(indices.astype(np.int64), labels.astype(np.int64), is_query, chosen.astype(np.int64))

    def state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state
