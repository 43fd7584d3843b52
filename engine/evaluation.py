"""What a run's numbers mean: few-shot episodes on classes (and images) it never trained on, four judges, and
95 % confidence intervals; and the held-out feature space itself, for the run page to draw.

Every judge reads the unmasked view of each image (`ExperimentModel.represent`), so a masked autoencoder is
judged on what it encodes, not on the quarter of each image its training ratio leaves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from data import EpisodeSampler, LabelledImages, Split
from engine.config import RunConfig
from engine.losses import accuracy
from engine.models.experiment import ExperimentModel, prototype_accuracy
from engine.models.heads import class_prototypes

JUDGES = ("prototype", "discriminator", "knn", "linear_probe")
KNN_NEIGHBOURS = 5
FEATURE_SAMPLE_PER_CLASS = 40  # held-out images per class drawn in the feature map
EVAL_SEED_OFFSET, SEEN_SEED_OFFSET = 1_000_003, 2_000_003

# (B, C, H, W) images -> ((B, D) embedding, (B, F) judged points)
Represent = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# support embeddings (S, D), their labels (S,), query embeddings (Q, D) -> (Q, N) scores
Discriminate = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def mean_ci95(values: list[float]) -> dict[str, float]:
    """Mean and the half-width of its 95 % interval, 1.96·σ/√E (σ the population standard deviation of the
    per-episode accuracies, as ProtoNets and Relation Network report)."""
    data = np.asarray(values, dtype=np.float64)
    return {"mean": float(data.mean()), "ci95": float(1.96 * data.std() / math.sqrt(len(data)))}


# --- the judges: each takes one episode's points and returns its query accuracy -------------------------------


def knn_accuracy(support: torch.Tensor, support_labels: torch.Tensor, queries: torch.Tensor,
                 query_labels: torch.Tensor, n_way: int, k: int = KNN_NEIGHBOURS) -> torch.Tensor:
    """k nearest support points vote for their class, each weighted by 1 / distance (so ties cannot favour the
    lowest class id)."""
    k = min(k, len(support))
    distances = torch.cdist(queries, support)
    nearest, index = distances.topk(k, dim=1, largest=False)
    votes = torch.zeros(len(queries), n_way, dtype=queries.dtype, device=queries.device)
    votes.scatter_add_(1, support_labels[index], 1.0 / (nearest + 1e-8))
    return accuracy(votes, query_labels)


def linear_probe_accuracies(support: torch.Tensor, support_labels: torch.Tensor, queries: torch.Tensor,
                            query_labels: torch.Tensor, n_way: int, iterations: int = 100) -> torch.Tensor:
    """Multinomial logistic regression fitted on each episode's support, scored on its queries; (E,) accuracies.

    support (E, S, F), queries (E, Q, F); episodes are fitted together (one L-BFGS over independent problems).
    Features are standardised by each episode's support statistics; the L2 penalty is scikit-learn's default
    (C = 1, i.e. ½‖W‖² / S added to the mean cross-entropy), so separable supports do not send weights to infinity.
    """
    support, queries = support.double(), queries.double()
    mean = support.mean(dim=1, keepdim=True)
    std = support.std(dim=1, keepdim=True).clamp_min(1e-6)
    support, queries = (support - mean) / std, (queries - mean) / std
    episodes, shots, dim = support.shape
    weight = torch.zeros(episodes, dim, n_way, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(episodes, 1, n_way, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        optimizer.zero_grad()
        logits = support @ weight + bias
        loss = F.cross_entropy(logits.reshape(-1, n_way), support_labels.reshape(-1), reduction="sum") / shots
        loss = loss + 0.5 * (weight ** 2).sum() / shots
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    with torch.no_grad():
        predicted = (queries @ weight + bias).argmax(dim=2)
    return (predicted == query_labels).double().mean(dim=1)


@torch.no_grad()
def judge_episodes(represent: Represent, discriminate: Discriminate | None, images: torch.Tensor,
                   sampler: EpisodeSampler, episodes: int) -> dict[str, list[float]]:
    """Per-episode query accuracy of each judge over `episodes` episodes from `sampler`."""
    n_way, device = sampler.n_way, images.device
    scores: dict[str, list[float]] = {"prototype": [], "knn": []}
    if discriminate is not None:
        scores["discriminator"] = []
    probe_support, probe_queries, probe_support_labels, probe_query_labels = [], [], [], []
    for _ in range(episodes):
        episode = sampler.sample()
        batch = images[torch.from_numpy(episode.indices).to(device)]
        labels = torch.from_numpy(episode.labels).to(device)
        is_query = torch.from_numpy(episode.is_query).to(device)
        embedding, points = represent(batch)
        points = points.float()
        s, q = ~is_query, is_query
        scores["prototype"].append(float(prototype_accuracy(points[s], labels[s], points[q], labels[q], n_way)))
        scores["knn"].append(float(knn_accuracy(points[s], labels[s], points[q], labels[q], n_way)))
        if discriminate is not None:
            scores["discriminator"].append(float(accuracy(discriminate(embedding[s], labels[s], embedding[q]),
                                                          labels[q])))
        probe_support.append(points[s].cpu())
        probe_queries.append(points[q].cpu())
        probe_support_labels.append(labels[s].cpu())
        probe_query_labels.append(labels[q].cpu())
    scores["linear_probe"] = linear_probe_accuracies(
        torch.stack(probe_support), torch.stack(probe_support_labels), torch.stack(probe_queries),
        torch.stack(probe_query_labels), n_way).tolist()
    return {judge: scores[judge] for judge in JUDGES if judge in scores}


def summarise(per_episode: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {judge: mean_ci95(values) for judge, values in per_episode.items()}


# --- the feature space -------------------------------------------------------------------------------------------


def alignment_uniformity(points: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Wang & Isola (2020) on the unit sphere: alignment = mean ‖x−y‖² over same-class pairs (lower: classes
    tighter), uniformity = log mean exp(−2‖x−y‖²) over all pairs (lower: more spread out)."""
    unit = F.normalize(points.double(), dim=1)
    squared = torch.cdist(unit, unit).pow(2)
    pairs = ~torch.eye(len(unit), dtype=torch.bool)
    same = (labels[:, None] == labels[None, :]) & pairs
    align = float(squared[same].mean()) if same.any() else float("nan")
    uniform = float(torch.log(torch.exp(-2 * squared[pairs]).mean()))
    return align, uniform


def distinct_points(points: torch.Tensor) -> int:
    """How many different points there are, at 1/1000 of the spread's scale (±1 features give 2)."""
    scale = points.abs().max().clamp_min(1e-12)
    return len(torch.unique(torch.round(points / scale * 1000), dim=0))


def feature_map(points: torch.Tensor, labels: torch.Tensor, class_names: list[str], *, normalized: bool,
                n_way: int) -> dict[str, Any]:
    """The held-out features as the run page draws them: 1-D and 2-D as they are, more dimensions by PCA onto
    two axes (with the share of variance they keep); alignment, uniformity, and whether they have collapsed."""
    points = points.double()
    dim = points.shape[1]
    coords, explained = points, None
    if dim > 2:
        centred = points - points.mean(dim=0)
        _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
        coords = centred @ vh[:2].T
        explained = float((singular[:2] ** 2).sum() / (singular ** 2).sum().clamp_min(1e-300))
    align, uniform = alignment_uniformity(points, labels)
    distinct = distinct_points(points)
    collapsed = distinct < n_way or float(points.var(dim=0).sum()) < 1e-10
    return {
        "dim": dim, "normalized": normalized, "projection": "pca" if dim > 2 else "none",
        "pca_explained": explained, "labels": labels.tolist(), "class_names": class_names,
        "points": [[round(float(v), 5) for v in row] for row in coords],
        "alignment": align, "uniformity": uniform, "distinct_points": distinct, "collapsed": collapsed,
        "collapse_reason": (f"the features take {distinct} distinct value(s): at most {distinct} of the "
                            f"{n_way} classes of an episode can be told apart") if collapsed else None,
    }


def feature_sample(labels: np.ndarray, pool: np.ndarray, classes: np.ndarray, seed: int) -> np.ndarray:
    """A fixed set of indices, up to FEATURE_SAMPLE_PER_CLASS per class from `pool`, the same at every step."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in classes:
        members = pool[labels[pool] == c]
        chosen.append(rng.permutation(members)[:FEATURE_SAMPLE_PER_CLASS])
    return np.sort(np.concatenate(chosen))


def judged_on(split: Split) -> str:
    return "held-out classes" if split.held_out_classes else "held-out images of the training classes"


# --- the whole evaluation of one model -----------------------------------------------------------------------


@dataclass
class Evaluator:
    """The split and the images on the device; builds the same evaluation episodes at every call."""

    cfg: RunConfig
    images: torch.Tensor
    dataset: LabelledImages
    split: Split

    def sampler(self, seen: bool) -> EpisodeSampler:
        d = self.cfg.data
        classes, pool = ((self.split.train_classes, self.split.seen_images) if seen
                         else (self.split.eval_classes, self.split.eval_images))
        offset = SEEN_SEED_OFFSET if seen else EVAL_SEED_OFFSET
        return EpisodeSampler(self.dataset.labels, classes, pool=pool, n_way=d.n_way, k_shot=d.k_shot,
                              q_queries=d.q_queries, seed=self.cfg.runtime.seed + offset)

    @property
    def has_seen_test(self) -> bool:
        return self.split.held_out_classes and len(self.split.seen_images) > 0

    def split_record(self) -> dict[str, Any]:
        names = self.dataset.class_names
        return {"train_classes": [names[c] for c in self.split.train_classes],
                "eval_classes": [names[c] for c in self.split.eval_classes],
                "held_out_classes": self.split.held_out_classes,
                "train_images": len(self.split.train_images), "seen_test_images": len(self.split.seen_images),
                "eval_images": len(self.split.eval_images)}

    def judges(self, model: ExperimentModel, episodes: int, *, seen: bool = False) -> dict[str, list[float]]:
        discriminate = model.discriminate if self.cfg.model.discriminator.enabled else None
        return judge_episodes(model.represent, discriminate, self.images, self.sampler(seen), episodes)

    @torch.no_grad()
    def features(self, model: ExperimentModel) -> dict[str, Any]:
        labels = self.dataset.labels
        chosen = feature_sample(labels, self.split.eval_images, self.split.eval_classes, self.cfg.runtime.seed)
        _, points = model.represent(self.images[torch.from_numpy(chosen).to(self.images.device)])
        normalized = self.cfg.model.contrastive.enabled and self.cfg.loss.normalize
        names = self.dataset.class_names
        return feature_map(points.float().cpu(), torch.from_numpy(labels[chosen]),
                           [names[c] for c in range(len(names))], normalized=normalized, n_way=self.cfg.data.n_way)

    def report(self, model: ExperimentModel, step: int) -> dict[str, Any]:
        """The end-of-run few-shot report, as written to eval.json."""
        cfg, started = self.cfg, time.perf_counter()
        was_training = model.training
        model.eval()
        held_out = self.judges(model, cfg.schedule.final_eval_episodes)
        seen = self.judges(model, cfg.schedule.final_eval_episodes, seen=True) if self.has_seen_test else None
        features = self.features(model)
        model.train(was_training)
        disc = cfg.model.discriminator
        return {
            "step": step,
            "split": self.split_record(),
            "episodes": cfg.schedule.final_eval_episodes,
            "n_way": cfg.data.n_way, "k_shot": cfg.data.k_shot, "q_queries": cfg.data.q_queries,
            "knn_neighbours": KNN_NEIGHBOURS,
            "discriminator": None if not disc.enabled else ("probe" if disc.detach else "co-trained head"),
            "judged_on": judged_on(self.split),
            "interval": "95 % over the episodes of this one split (data.seed); another split of the classes can "
                        "differ by more than this interval",
            "images_seen_whole": True,
            "accuracy": summarise(held_out),
            "seen_classes": summarise(seen) if seen else None,
            "per_episode": {"held_out": held_out, "seen_classes": seen},
            "features": {k: features[k] for k in ("dim", "alignment", "uniformity", "distinct_points",
                                                  "collapsed", "collapse_reason")},
            "wall_seconds": round(time.perf_counter() - started, 2),
        }
