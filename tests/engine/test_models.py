import torch

from engine.config import with_overrides
from engine.presets import PRESETS
from engine.models import ExperimentModel
from engine.models.vit import ViTEncoder
from tests.helpers import tiny


def model_for(*overrides: str) -> ExperimentModel:
    torch.manual_seed(0)
    return ExperimentModel(tiny(PRESETS["2023-01-12-vit-ae-separate-decoders"], *overrides))


def episode(cfg):
    d = cfg.data
    per_class = d.k_shot + d.q_queries
    images = torch.rand(d.n_way * per_class, d.channels, d.image_size, d.image_size)
    labels = torch.arange(d.n_way).repeat_interleave(per_class)
    is_query = torch.tensor(([False] * d.k_shot + [True] * d.q_queries) * d.n_way)
    return images, labels, is_query


def test_shared_decoders_are_one_module_and_agree():
    model = model_for("model.decoders.share=true").eval()
    assert len(model.decoders.modules_list) == 1
    out = model(*episode(model.cfg))
    assert len(out.predictions) == 2 and torch.equal(out.predictions[0], out.predictions[1])


def test_separate_decoders_have_their_own_different_weights():
    model = model_for("model.decoders.share=false")
    first, second = model.decoders.modules_list
    assert {id(p) for p in first.parameters()}.isdisjoint(id(p) for p in second.parameters())
    assert not torch.equal(first.pred.weight, second.pred.weight)
    out = model.eval()(*episode(model.cfg))
    assert not torch.equal(out.predictions[0], out.predictions[1])


def test_shared_decoders_have_half_the_decoder_parameters():
    shared = sum(p.numel() for p in model_for("model.decoders.share=true").decoders.parameters())
    separate = sum(p.numel() for p in model_for("model.decoders.share=false").decoders.parameters())
    assert separate == 2 * shared


def test_learnable_position_embedding_uses_timm_init():
    torch.manual_seed(0)
    encoder = ViTEncoder(img_size=64, patch_size=4, in_chans=3, embed_dim=64, depth=1, num_heads=2,
                         mlp_ratio=4.0, pos_embed="learnable")
    assert encoder.pos_embed.requires_grad
    assert abs(encoder.pos_embed.std().item() - 0.02) < 0.002  # truncated at ±2 std: about 0.0176..0.02
    assert encoder.pos_embed.abs().max().item() <= 2.0  # timm truncates at ±2 (absolute)


def test_sincos_position_embedding_is_fixed():
    encoder = ViTEncoder(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=1, num_heads=2,
                         mlp_ratio=4.0, pos_embed="sincos")
    assert not encoder.pos_embed.requires_grad
    assert torch.equal(encoder.pos_embed[0, 0], torch.zeros(32))  # the class token's row


def test_masked_encoder_sees_only_kept_tokens():
    model = ExperimentModel(tiny(PRESETS["2023-01-12-mae-two-decoders-different-targets"]))
    images, labels, is_query = episode(model.cfg)
    encoded = model.encoder(images, 0.75)
    assert encoded.tokens.shape[1] == 1 + int(16 * 0.25)
    out = model(images, labels, is_query)
    assert out.mask.sum(1).eq(12).all()
    assert [p.shape for p in out.predictions] == [(len(images), 16, 16)] * 2


def test_discriminator_gives_accuracy_and_prototype_accuracy_always_logged():
    cfg = tiny(PRESETS["2022-12-08-disc-vit1"])
    out = ExperimentModel(cfg)(*episode(cfg))
    assert set(out.accuracy) == {"discriminator", "prototype"} and set(out.terms) == {"contrastive", "disc"}
    cfg = tiny(PRESETS["2022-12-08-vit1"])
    out = ExperimentModel(cfg)(*episode(cfg))
    assert set(out.accuracy) == {"prototype"}
    assert 0.0 <= out.accuracy["prototype"].item() <= 1.0


def test_contrastive_head_projects_to_feature_dim():
    cfg = with_overrides(tiny(PRESETS["2022-12-14-vit6-1d-disc"]), ["model.encoder.depth=2"])
    out = ExperimentModel(cfg)(*episode(cfg))
    assert out.features.shape == (len(out.embedding), 1)


def test_the_decoders_position_embedding_is_a_config_field():
    fixed = ExperimentModel(tiny(PRESETS["tiny"]))  # the 2023.01.12 presets set learnable, as the journal says
    learnable = ExperimentModel(tiny(PRESETS["tiny"], "model.decoders.pos_embed=learnable"))
    for decoder in fixed.decoders.modules_list:
        assert not decoder.pos_embed.requires_grad  # MAE's fixed sin-cos table, the default
    for decoder in learnable.decoders.modules_list:
        assert decoder.pos_embed.requires_grad and abs(decoder.pos_embed.std().item() - 0.02) < 0.004
