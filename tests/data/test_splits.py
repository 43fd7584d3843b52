"""Every dataset splits into training classes, held-out classes and held-out images, and says when it cannot."""

import numpy as np
import pytest

from data import EpisodeSampler, SplitError, check_split, class_sizes, load_dataset, split_dataset
from engine.config import ConfigError, RunConfig, validate_config


def _default_split(dataset: str, path: str | None = None):
    data = RunConfig().data.model_copy(update={"dataset": dataset, "path": path})
    loaded = load_dataset(dataset, image_size=data.image_size, channels=data.channels, path=path,
                          num_classes=data.num_classes, samples_per_class=data.samples_per_class, seed=data.seed)
    split = split_dataset(loaded.labels, n_way=data.n_way, k_shot=data.k_shot, q_queries=data.q_queries,
                          holdout_classes=data.holdout_classes, holdout_images=data.holdout_images, seed=data.seed)
    return loaded, split, data


@pytest.fixture
def npz_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "set.npz"
    np.savez(path, images=rng.integers(0, 255, (12 * 30, 8, 8), dtype=np.uint8),
             labels=np.repeat([f"c{i}" for i in range(12)], 30))
    return str(path)


@pytest.fixture
def image_folder(tmp_path):
    from PIL import Image

    for c in range(11):
        (tmp_path / f"class{c}").mkdir()
        for i in range(16):
            Image.new("L", (8, 8), color=(c * 20 + i) % 256).save(tmp_path / f"class{c}" / f"{i}.png")
    return str(tmp_path)


@pytest.mark.parametrize("dataset", ["shapes", "digits", "npz", "folder"])
def test_default_splits_keep_classes_and_images_apart(dataset, npz_file, image_folder):
    path = {"npz": npz_file, "folder": image_folder}.get(dataset)
    loaded, split, data = _default_split(dataset, path)
    train, held = set(split.train_classes.tolist()), set(split.eval_classes.tolist())
    assert not train & held and len(held) == data.n_way and train | held == set(range(loaded.num_classes))
    assert not set(split.train_images.tolist()) & set(split.seen_images.tolist())
    assert set(loaded.labels[split.train_images].tolist()) == train  # training never sees a held-out class
    assert set(loaded.labels[split.eval_images].tolist()) == held
    assert set(loaded.labels[split.seen_images].tolist()) == train
    # every pool gives episodes, and a training episode never draws a held-out image
    sampler = EpisodeSampler(loaded.labels, split.train_classes, pool=split.train_images, n_way=data.n_way,
                             k_shot=data.k_shot, q_queries=data.q_queries, seed=0)
    drawn = np.concatenate([sampler.sample().indices for _ in range(50)])
    assert set(drawn.tolist()) <= set(split.train_images.tolist())


def test_a_split_is_the_same_for_the_same_seed_and_differs_for_another():
    labels = np.repeat(np.arange(10), 20)
    args = dict(n_way=5, k_shot=4, q_queries=4, holdout_classes=None, holdout_images=0.2)
    first, again, other = (split_dataset(labels, seed=s, **args) for s in (0, 0, 1))
    assert np.array_equal(first.eval_classes, again.eval_classes)
    assert np.array_equal(first.seen_images, again.seen_images)
    assert not np.array_equal(first.eval_classes, other.eval_classes)


def test_without_held_out_classes_evaluation_uses_held_out_images():
    labels = np.repeat(np.arange(6), 20)
    split = split_dataset(labels, n_way=5, k_shot=2, q_queries=2, holdout_classes=0, holdout_images=0.25, seed=0)
    assert not split.held_out_classes
    assert np.array_equal(split.eval_images, split.seen_images) and len(split.seen_images) == 6 * 5
    small = split_dataset(labels, n_way=5, k_shot=4, q_queries=4, holdout_classes=0, holdout_images=0.1, seed=0)
    assert len(small.seen_images) == 6 * 8  # never fewer than one episode's worth per class
    assert not set(split.eval_images.tolist()) & set(split.train_images.tolist())


@pytest.mark.parametrize("values, field, words", [
    ({"data": {"holdout_classes": 3}}, "data.holdout_classes", "cannot make 5-way"),
    ({"data": {"holdout_classes": 6}}, "data.holdout_classes", "leaves 4 for training"),
    ({"data": {"num_classes": 8}}, "data.holdout_classes", "leaves 3 for training"),
    ({"data": {"samples_per_class": 12}}, "data.holdout_images", "leaves 4 to train on, fewer than 8"),
    ({"data": {"holdout_classes": 0, "holdout_images": 0}}, "data.holdout_images", "needs held-out images"),
    ({"data": {"dataset": "digits", "k_shot": 100, "q_queries": 100}}, "data.holdout_images", "leaves"),
])
def test_an_impossible_split_is_a_validation_error_naming_the_field(values, field, words):
    with pytest.raises(ConfigError) as raised:
        validate_config(values)
    (problem,) = raised.value.problems
    assert problem.path == field and words in problem.message


def test_the_submit_time_check_agrees_with_the_split_itself():
    labels = np.repeat(np.arange(7), [30, 30, 30, 30, 30, 30, 9])  # one small class, wherever the seed puts it
    for seed in range(5):
        with pytest.raises(SplitError, match="data.holdout_images"):
            split_dataset(labels, n_way=2, k_shot=4, q_queries=4, holdout_classes=None, holdout_images=0.2,
                          seed=seed)
    with pytest.raises(SplitError):
        check_split(np.bincount(labels).tolist(), n_way=2, k_shot=4, q_queries=4, holdout_classes=None,
                    holdout_images=0.2)


def test_class_sizes_count_without_decoding(npz_file, image_folder):
    assert class_sizes("shapes", num_classes=4, samples_per_class=7) == [7, 7, 7, 7]
    assert sum(class_sizes("digits")) == 1797
    assert class_sizes("npz", path=npz_file) == [30] * 12
    assert class_sizes("folder", path=image_folder) == [16] * 11
