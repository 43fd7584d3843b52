"""The few-shot protocol: held-out classes, four judges, intervals that are what they say, MAE judged unmasked,
a detached discriminator that cannot touch the encoder, and the feature map the run page draws."""

import json
import math

import numpy as np
import pytest
import torch

from data import EpisodeSampler
from engine.config import with_overrides
from engine.presets import PRESETS, what_trains
from engine.evaluation import (JUDGES, alignment_uniformity, feature_map, judge_episodes, knn_accuracy,
                               linear_probe_accuracies)
from engine.models import ExperimentModel
from engine.sinks import JsonlSink
from engine.train import load_episodes, train
from tests.helpers import tiny


def _events(folder, kind):
    lines = (folder / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


def test_eval_json_holds_the_split_every_judge_and_intervals_from_its_own_episodes(tmp_path):
    cfg = tiny(PRESETS["2022-12-14-normalized-infonce-2d"], "schedule.episodes=6", "schedule.eval_every=3",
               "schedule.eval_episodes=5", "schedule.final_eval_episodes=30")
    sink = JsonlSink(tmp_path)
    assert train(cfg, sink, run_dir=tmp_path).status == "completed"
    sink.close()
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["episodes"] == 30 and (report["n_way"], report["k_shot"]) == (3, 2)
    split = report["split"]
    assert len(split["eval_classes"]) == 3 and not set(split["eval_classes"]) & set(split["train_classes"])
    assert set(report["accuracy"]) == set(JUDGES) and report["discriminator"] == "co-trained head"
    for block, per_episode in (("accuracy", "held_out"), ("seen_classes", "seen_classes")):
        for judge, summary in report[block].items():
            values = np.asarray(report["per_episode"][per_episode][judge])
            assert len(values) == 30
            assert summary["mean"] == pytest.approx(values.mean())
            assert summary["ci95"] == pytest.approx(1.96 * values.std() / math.sqrt(30))
    assert _events(tmp_path, "evaluation")[0]["accuracy"] == report["accuracy"]  # the notebook gets the same
    maps = _events(tmp_path, "features")
    assert [m["step"] for m in maps] == [3, 6] and maps[0]["dim"] == 2 and maps[0]["normalized"]
    assert len(maps[0]["points"]) == len(maps[0]["labels"]) and all(len(p) == 2 for p in maps[0]["points"])
    names = maps[0]["class_names"]
    assert {names[i] for i in maps[0]["labels"]} == set(split["eval_classes"])


def test_random_features_score_chance_within_their_interval():
    torch.manual_seed(0)
    labels = np.repeat(np.arange(10), 30)
    images = torch.zeros(len(labels), 1, 4, 4)  # what the images hold does not matter to a random model
    sampler = EpisodeSampler(labels, np.arange(5, 10), n_way=5, k_shot=4, q_queries=4, seed=1)

    def represent(batch):
        points = torch.randn(len(batch), 8)
        return points, points

    def discriminate(support, support_labels, queries):
        return torch.randn(len(queries), 5)

    per_episode = judge_episodes(represent, discriminate, images, sampler, 600)
    for judge, values in per_episode.items():
        values = np.asarray(values)
        ci95 = 1.96 * values.std() / math.sqrt(len(values))
        assert abs(values.mean() - 1 / 5) <= ci95, (judge, values.mean(), ci95)


def test_the_judges_agree_on_separable_features():
    support = torch.tensor([[0.0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    support_labels = torch.tensor([0, 0, 1, 1])
    queries, query_labels = torch.tensor([[0.2, 0.1], [4.9, 5.2]]), torch.tensor([0, 1])
    assert float(knn_accuracy(support, support_labels, queries, query_labels, 2, k=3)) == 1.0
    probe = linear_probe_accuracies(support[None], support_labels[None], queries[None], query_labels[None], 2)
    assert probe.tolist() == [1.0]
    swapped = linear_probe_accuracies(support[None], support_labels[None], queries[None], 1 - query_labels[None], 2)
    assert swapped.tolist() == [0.0]


def _encoder_grads(cfg, images, labels, is_query, *, without_disc: bool):
    torch.manual_seed(0)
    model = ExperimentModel(cfg)
    out = model(images, labels, is_query)
    loss = out.total - cfg.loss.discriminator_weight * out.terms["disc"] if without_disc else out.total
    loss.backward()
    return [p.grad.clone() for p in model.encoder.parameters() if p.grad is not None]


@pytest.mark.parametrize("detach", [True, False])
def test_a_detached_discriminator_leaves_the_encoder_gradient_unchanged(detach):
    cfg = tiny(PRESETS["2022-12-14-normalized-infonce-2d"], f"model.discriminator.detach={json.dumps(detach)}")
    source = load_episodes(cfg, torch.device("cpu"))
    images, labels, is_query = source.batch(source.train)
    with_disc = _encoder_grads(cfg, images, labels, is_query, without_disc=False)
    without = _encoder_grads(cfg, images, labels, is_query, without_disc=True)
    same = all(torch.equal(a, b) for a, b in zip(with_disc, without))
    assert same == detach  # joint training moves the encoder through the discriminator; a probe never does


def test_mae_evaluation_sees_every_patch_while_training_masks():
    cfg = tiny(PRESETS["2023-01-12-mae-two-decoders-different-targets"])
    model = ExperimentModel(cfg)
    source = load_episodes(cfg, torch.device("cpu"))
    tokens_seen = []
    model.encoder.blocks.register_forward_hook(lambda module, args, output: tokens_seen.append(args[0].shape[1]))
    images, labels, is_query = source.batch(source.train)
    model(images, labels, is_query)
    kept = int(cfg.num_patches * (1 - cfg.model.masking.ratio))
    assert tokens_seen == [1 + kept]  # training: the class token and the kept quarter
    tokens_seen.clear()
    source.evaluator.judges(model, 2)
    source.evaluator.features(model)
    assert tokens_seen and set(tokens_seen) == {1 + cfg.num_patches}  # evaluation: every patch


def test_autoencoder_presets_train_what_the_journal_says_and_say_so():
    for name in ("2023-01-12-vit-ae-shared-decoders", "2023-01-12-vit-ae-separate-decoders",
                 "2023-01-12-mae-two-decoders-different-targets"):
        cfg = PRESETS[name]
        assert not cfg.model.contrastive.enabled and "InfoNCE" not in what_trains(cfg)
    assert "discriminator trained jointly" in what_trains(PRESETS["2022-12-08-disc-vit1"])
    probe = with_overrides(PRESETS["2022-12-08-disc-vit1"], ["model.discriminator.detach=true"])
    assert "probe on detached features" in what_trains(probe)
    scaled = PRESETS["2022-12-14-normalized-infonce-2d-journal-scale"]
    d = scaled.data
    assert d.n_way * (d.k_shot + d.q_queries) == 128 and d.image_size == 32


def test_feature_maps_show_a_collapse_and_project_wide_features():
    labels = torch.arange(5).repeat_interleave(8)
    plus_minus = torch.where(labels[:, None] % 2 == 0, 1.0, -1.0)  # normalised 1-D features: ±1
    collapsed = feature_map(plus_minus, labels, list("abcde"), normalized=True, n_way=5)
    assert collapsed["collapsed"] and collapsed["distinct_points"] == 2 and "2 distinct" in collapsed["collapse_reason"]
    spread = feature_map(torch.randn(40, 6), labels, list("abcde"), normalized=False, n_way=5)
    assert not spread["collapsed"] and spread["projection"] == "pca" and len(spread["points"][0]) == 2
    assert 0 < spread["pca_explained"] <= 1
    # alignment is 0 when every class is one point; uniformity is lowest when points spread over the circle
    angles = labels.double() * 2 * math.pi / 5
    clustered = torch.stack([angles.cos(), angles.sin()], dim=1)
    align, uniform = alignment_uniformity(clustered, labels)
    assert align == pytest.approx(0.0, abs=1e-12)
    assert uniform < alignment_uniformity(torch.ones(40, 2), labels)[1]


def test_a_split_that_fails_for_unreadable_files_says_so(tmp_path, monkeypatch):
    from PIL import Image

    from data import SplitError

    root = tmp_path / "datasets" / "mixed"
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(20):  # 20 files per class pass the submit-time count; only 8 decode
            path = root / f"class{c}" / f"{i}.png"
            if i < 8:
                Image.new("L", (8, 8), color=c * 20).save(path)
            else:
                path.write_bytes(b"not a png")
    monkeypatch.setenv("LAB_DATA_DIR", str(tmp_path / "datasets"))
    cfg = with_overrides(PRESETS["tiny"], ["data.dataset=folder", "data.path=mixed"])
    with pytest.raises(SplitError, match=r"data.holdout_images: .* \(120 unreadable image files in data.path"):
        load_episodes(cfg, torch.device("cpu"))


def test_a_detached_discriminator_alone_is_refused():
    from engine.config import ConfigError

    with pytest.raises(ConfigError, match="model.discriminator.detach: a detached discriminator is a probe"):
        with_overrides(PRESETS["2022-12-08-disc-vit1"], ["model.contrastive.enabled=false",
                                                         "model.discriminator.detach=true"])
