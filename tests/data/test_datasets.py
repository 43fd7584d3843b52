import numpy as np
import pytest
from PIL import Image

from data import DatasetError, EpisodeSampler, load_dataset


def test_shapes_are_deterministic_labelled_and_in_range():
    first = load_dataset("shapes", image_size=16, channels=1, num_classes=5, samples_per_class=8, seed=3)
    again = load_dataset("shapes", image_size=16, channels=1, num_classes=5, samples_per_class=8, seed=3)
    other = load_dataset("shapes", image_size=16, channels=1, num_classes=5, samples_per_class=8, seed=4)
    assert first.images.shape == (40, 1, 16, 16) and first.images.dtype == np.float32
    assert np.array_equal(first.images, again.images) and not np.array_equal(first.images, other.images)
    assert np.bincount(first.labels).tolist() == [8] * 5
    assert 0.0 <= first.images.min() and first.images.max() <= 1.0
    colour = load_dataset("shapes", image_size=24, channels=3, num_classes=3, samples_per_class=2, seed=0)
    assert colour.images.shape == (6, 3, 24, 24)


def test_shape_classes_differ_on_average():
    shapes = load_dataset("shapes", image_size=16, channels=1, num_classes=10, samples_per_class=30, seed=0)
    means = np.stack([shapes.images[shapes.labels == c].mean(0) for c in range(10)])
    distances = np.linalg.norm((means[:, None] - means[None]).reshape(10, 10, -1), axis=2)
    assert distances[~np.eye(10, dtype=bool)].min() > 0.3


def test_bundled_digits_load_without_a_download():
    digits = load_dataset("digits", image_size=16, channels=1)
    assert digits.images.shape == (1797, 1, 16, 16)
    assert digits.class_names == [str(d) for d in range(10)] and digits.images.max() == pytest.approx(1.0)


def test_image_folder_skips_and_counts_unreadable_files(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    (tmp_path / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "dogs" / "notes.txt").write_text("ignored: not an image suffix")
    found = load_dataset("folder", path=str(tmp_path), image_size=8, channels=3)
    assert found.class_names == ["cats", "dogs"] and found.images.shape == (6, 3, 8, 8)
    assert found.skipped == 1 and found.skipped_files[0].endswith("broken.png")


def test_image_folder_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset("folder", path=str(tmp_path / "missing"), image_size=8, channels=1)
    (tmp_path / "only").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "only" / "a.png")
    with pytest.raises(DatasetError, match="at least two class"):
        load_dataset("folder", path=str(tmp_path), image_size=8, channels=1)


def test_npz_arrays_in_any_layout(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, size=(6, 3, 10, 10)).astype(np.uint8)
    np.savez(tmp_path / "set.npz", images=images, labels=np.array(["a", "b", "a", "b", "c", "c"]))
    found = load_dataset("npz", path=str(tmp_path / "set.npz"), image_size=10, channels=3)
    assert found.class_names == ["a", "b", "c"] and found.labels.tolist() == [0, 1, 0, 1, 2, 2]
    assert np.allclose(found.images, images / 255.0, atol=1e-6)


@pytest.mark.parametrize("arrays,message", [
    ({"pictures": np.zeros((2, 4, 4)), "labels": np.zeros(2)}, "missing array"),
    ({"images": np.zeros((2, 4, 4)), "labels": np.zeros(3)}, "one label per image"),
    ({"images": np.zeros((4, 4)), "labels": np.zeros(4)}, "must be"),
    ({"images": np.full((2, 4, 4), np.nan), "labels": np.zeros(2)}, "NaN"),
])
def test_bad_npz_files_get_clear_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset("npz", path=str(tmp_path / "bad.npz"), image_size=4, channels=1)


def test_garbage_npz_and_unknown_dataset(tmp_path):
    (tmp_path / "garbage.npz").write_bytes(b"\x00\x01garbage")
    with pytest.raises(DatasetError, match="garbage.npz"):
        load_dataset("npz", path=str(tmp_path / "garbage.npz"), image_size=4, channels=1)
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", image_size=4, channels=1)


def test_episodes_are_n_way_k_shot_with_queries_and_resumable():
    labels = np.repeat(np.arange(6), 10)
    sampler = EpisodeSampler(labels, np.arange(6), n_way=3, k_shot=2, q_queries=4, seed=0)
    episode = sampler.sample()
    assert len(episode.indices) == 18 and len(set(episode.indices.tolist())) == 18
    assert episode.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert episode.is_query.tolist() == ([False] * 2 + [True] * 4) * 3
    assert (labels[episode.indices] == episode.classes[episode.labels]).all()
    state = sampler.state()
    following = sampler.sample()
    sampler.set_state(state)
    assert np.array_equal(sampler.sample().indices, following.indices)


def test_the_sampler_refuses_episodes_it_cannot_draw():
    with pytest.raises(ValueError, match="n_way"):
        EpisodeSampler(np.repeat(np.arange(3), 5), np.arange(3), n_way=5, k_shot=1, q_queries=1, seed=0)
    with pytest.raises(ValueError, match="fewer"):
        EpisodeSampler(np.repeat(np.arange(3), 2), np.arange(3), n_way=2, k_shot=2, q_queries=2, seed=0)
