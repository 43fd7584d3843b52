import pytest
from pydantic import ValidationError

from engine.config import ConfigError, RunConfig, fields_set, validate_config, with_overrides
from engine.lint import lint
from engine.presets import PRESET_INFO, PRESETS, preset


def problem_paths(error: ConfigError) -> set[str]:
    return {p.path for p in error.problems}


@pytest.mark.parametrize("override,path", [
    ("optim.lr=-0.1", "optim.lr"),
    ("model.masking.ratio=1.0", "model.masking.ratio"),
    ("model.encoder.patch_size=5", "model.encoder.patch_size"),
    ("model.decoders.shared=true", "model.decoders.shared"),
    ("loss.denominator=\"positives\"", "loss.denominator"),
    ("data.n_way=1", "data.n_way"),
])
def test_bad_values_are_rejected_with_the_field_named(override, path):
    with pytest.raises(ConfigError) as caught:
        with_overrides(PRESETS["tiny"], [override])
    assert path in problem_paths(caught.value)
    assert path in str(caught.value)


def test_unknown_key_says_unknown_key():
    with pytest.raises(ConfigError) as caught:
        validate_config({"optim": {"learning_rate": 0.1}})
    assert [(p.path, p.message) for p in caught.value.problems] == [("optim.learning_rate", "unknown key")]


def test_unknown_section_in_override():
    with pytest.raises(ConfigError, match="nosuch"):
        with_overrides(PRESETS["tiny"], ["nosuch.thing=1"])


def test_unknown_preset_lists_known_names():
    with pytest.raises(ConfigError) as caught:
        preset("2099-01-01-nothing")
    assert problem_paths(caught.value) == {"preset"} and "tiny" in str(caught.value)


def test_configs_are_frozen_and_overrides_make_new_ones():
    cfg = PRESETS["tiny"]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.optim.lr = 1.0  # type: ignore[misc]
    changed = with_overrides(cfg, ["optim.lr=0.5"])
    assert changed.optim.lr == 0.5 and cfg.optim.lr != 0.5


def test_every_field_has_a_description_for_the_form():
    def walk(model, prefix=""):
        for name, field in model.model_fields.items():
            assert field.description, f"{prefix}{name} has no description"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, RunConfig.__mro__[1]):
                walk(annotation, f"{prefix}{name}.")
    walk(RunConfig)


def test_lint_flags_one_dimensional_normalised_features():
    warnings = lint(with_overrides(PRESETS["tiny"], ["model.contrastive.feature_dim=1", "loss.normalize=true"]))
    assert "model.contrastive.feature_dim" in {w.path for w in warnings}
    assert not lint(with_overrides(PRESETS["tiny"], ["model.contrastive.feature_dim=1", "loss.normalize=false",
                                                     "loss.temperature=1.0"]))


@pytest.mark.parametrize("overrides,path", [
    (["loss.denominator=\"negatives\"", "loss.normalize=false", "loss.temperature=1.0"], "loss.denominator"),
    (["loss.normalize=false", "loss.temperature=0.05"], "loss.temperature"),
    (["model.masking.ratio=0.95"], "model.masking.ratio"),
    (["model.decoders.count=2", "model.decoders.share=true"], "model.decoders.share"),
    (["model.masking.ratio=0", "model.decoders.count=1"], "model.decoders.first.target"),
    (["loss.log_sum_exp=false"], "loss.log_sum_exp"),
])
def test_lint_covers_the_known_pitfalls(overrides, path):
    assert path in {w.path for w in lint(with_overrides(PRESETS["tiny"], overrides))}


def test_presets_cover_the_journal():
    dated = [p for p in PRESET_INFO.values() if p.journal_date]
    assert len(dated) >= 9
    assert {p.journal_date for p in dated} == {"2022.12.08", "2022.12.14", "2023.01.12"}
    mae = PRESETS["2023-01-12-mae-two-decoders-different-targets"].model
    assert mae.masking.ratio > 0 and mae.encoder.pos_embed == "learnable" and mae.decoders.count == 2
    assert PRESETS["2023-01-12-vit-ae-shared-decoders"].model.decoders.share
    assert not PRESETS["2023-01-12-vit-ae-separate-decoders"].model.decoders.share
    assert PRESETS["2022-12-14-vit6-1d-no-accuracy"].model.encoder.depth == 6


def test_data_path_must_lie_in_the_data_folder(tmp_path, monkeypatch):
    from engine.config import ConfigError, data_choices, with_overrides
    from engine.presets import preset
    from tests.helpers import counted_image_folder

    root = tmp_path / "datasets"
    counted_image_folder(root / "my-shapes")
    (root / "arrays.npz").write_bytes(b"")
    (root / "escape").symlink_to("/etc")
    monkeypatch.setenv("LAB_DATA_DIR", str(root))
    assert data_choices() == ["arrays.npz", "escape", "my-shapes"]
    ok = with_overrides(preset("tiny"), ["data.dataset=folder", "data.path=my-shapes"])
    assert ok.data.path == "my-shapes"
    for outside in ("/etc", "../../etc", "escape", str(root / ".." / "elsewhere")):
        with pytest.raises(ConfigError) as refused:
            with_overrides(preset("tiny"), ["data.dataset=folder", f"data.path={outside}"])
        assert [p.path for p in refused.value.problems] == ["data.path"]
        assert "outside the data folder" in refused.value.problems[0].message
    with pytest.raises(ConfigError, match="does not exist in the data folder"):
        with_overrides(preset("tiny"), ["data.dataset=npz", "data.path=nothing.npz"])
    (root / "one-class" / "circle").mkdir(parents=True)
    with pytest.raises(ConfigError, match="data.path: 'one-class' has 0 class sub-folders with images"):
        with_overrides(preset("tiny"), ["data.dataset=folder", "data.path=one-class"])


def test_fields_set_are_the_paths_that_differ_from_the_defaults_in_schema_order():
    assert fields_set(RunConfig().model_dump(mode="json")) == []
    assert fields_set(PRESETS["2023-01-12-mae-two-decoders-different-targets"].model_dump(mode="json")) == [
        "model.masking.ratio", "model.contrastive.enabled", "model.decoders.count", "model.decoders.pos_embed",
        "model.decoders.second.target", "schedule.episodes"]
    # A stored config from before a field existed (or with one since removed): missing means default.
    assert fields_set({"optim": {"lr": 0.5}, "model": {"encoder": {"depth": 6}}, "gone": 1}) == [
        "model.encoder.depth", "optim.lr"]
