"""Issue #22, part 2: each field had bounds, but together they accepted a run that cannot fit. The issue's config
(256 px colour, 5,000 images a class, patch 1, 5,120 images an episode, a 48 x 1,536 ViT, 64 processes, 10 M
episodes, 100 k evaluation episodes) is refused by the form and the CLI before anything is queued, each limit at
the field to change with its estimate; the limits are this deployment's ($LAB_BUDGET_*), and every preset fits."""

from __future__ import annotations

import re

import pytest
import torch

from engine import budget, cli
from engine.config import ConfigError, with_overrides
from engine.presets import PRESETS
from engine.models import ExperimentModel
from tests.app.conftest import served_on_loopback  # noqa: F401 - autouse fixture: AppTest serves on loopback
from tests.app.conftest import notebook, page  # noqa: F401 - the app tests' notebook fixture and page driver

HUGE = {"data.image_size": 256, "data.channels": 3, "data.samples_per_class": 5000, "data.num_classes": 10,
        "data.n_way": 10, "data.k_shot": 256, "data.q_queries": 256, "data.holdout_classes": 0,
        "model.encoder.patch_size": 1, "model.encoder.depth": 48, "model.encoder.embed_dim": 1536,
        "model.encoder.num_heads": 32, "runtime.processes": 64, "schedule.episodes": 10_000_000,
        "schedule.final_eval_episodes": 100_000}
HUGE_OVERRIDES = [f"{path}={value}" for path, value in HUGE.items()]
DATASET = ("data.samples_per_class: dataset 39.3 GB in memory > budget 8 GB ($LAB_BUDGET_DATASET_GB): "
           "data.num_classes × data.samples_per_class × data.image_size² × data.channels × 4 bytes = "
           "10 × 5,000 × 256² × 3 × 4")
EXPECTED = {  # each limit passed, at the field to change, with the estimate
    "data.samples_per_class": "dataset 39.3 GB in memory > budget 8 GB",
    "model.encoder.patch_size": "65,536 tokens an image > budget 4,096",
    "data.n_way": "5,120 images an episode > budget 2,048",
    "model.encoder.depth": "model of about 1,463 M parameters > budget 1,000 M",
    "model.encoder.embed_dim": "activations of about",
    "runtime.processes": "64 processes on one host > budget 16",
    "schedule.episodes": "51,200 M images trained > budget 1,000 M",
    "schedule.final_eval_episodes": "100,000 evaluation episodes > budget 10,000",
}


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    """The defaults, whatever this machine's environment sets."""
    for field in budget.Limits.__dataclass_fields__:
        monkeypatch.delenv(budget.variable_for(field), raising=False)


def test_the_issues_config_is_refused_naming_each_field_and_its_estimate():
    with pytest.raises(ConfigError) as refused:
        with_overrides(PRESETS["tiny"], HUGE_OVERRIDES)
    said = {p.path: p.message for p in refused.value.problems}
    assert str(refused.value.problems[0]) == DATASET
    assert set(said) == set(EXPECTED)
    for path, words in EXPECTED.items():
        assert said[path].startswith(words), (path, said[path])


def test_the_cli_refuses_it_and_queues_nothing(notebook, capsys):
    code = cli.main(["submit", "--preset", "tiny", "--db", notebook.url,
                     *[arg for override in HUGE_OVERRIDES for arg in ("--set", override)]])
    said = capsys.readouterr()
    assert code == 2 and said.out == "" and "Traceback" not in said.err
    assert DATASET in said.err and "model.encoder.patch_size: 65,536 tokens an image" in said.err
    assert notebook.list_runs() == []


def test_the_form_shows_it_before_launch_and_queues_nothing(notebook):
    form = page("new_run")
    for path, value in HUGE.items():
        key = f"tiny:{path}"
        if path == "data.channels":
            form.selectbox(key=key).set_value(value)
        elif path == "data.holdout_classes":  # optional: a text box
            form.text_input(key=key).set_value(str(value))
        else:
            form.number_input(key=key).set_value(value)
    form.run()
    assert not form.exception, [e.value for e in form.exception]
    errors = [re.sub(r"\\(.)", r"\1", e.value) for e in form.error]  # as read: the page escapes Markdown
    assert f"**data.samples_per_class**: {DATASET.split(': ', 1)[1]}" in errors
    assert any(e.startswith("**runtime.processes**: 64 processes on one host > budget 16") for e in errors)
    assert form.button[-1].label == "🚀 Launch" and form.button[-1].disabled
    assert notebook.list_runs() == []


def test_each_limit_is_set_per_deployment_by_its_variable(monkeypatch):
    monkeypatch.setenv("LAB_BUDGET_DATASET_GB", "50")
    monkeypatch.setenv("LAB_BUDGET_PROCESSES_PER_HOST", "64")
    with pytest.raises(ConfigError) as refused:
        with_overrides(PRESETS["tiny"], HUGE_OVERRIDES)
    assert set(EXPECTED) - {p.path for p in refused.value.problems} == {"data.samples_per_class", "runtime.processes"}
    small = PRESETS["tiny"]  # 10 classes x 20 images of 16 x 16 grey: 204,800 bytes
    monkeypatch.setenv("LAB_BUDGET_DATASET_GB", "0.0001")
    with pytest.raises(ConfigError, match=r"data.samples_per_class: dataset 0.000205 GB in memory > budget 0.0001 GB"):
        with_overrides(small, [])
    monkeypatch.setenv("LAB_BUDGET_DATASET_GB", "lots")
    with pytest.raises(ConfigError, match=r"budget: \$LAB_BUDGET_DATASET_GB='lots' is not a number"):
        with_overrides(small, [])
    monkeypatch.setenv("LAB_BUDGET_DATASET_GB", "-1")
    with pytest.raises(ConfigError, match="must be more than 0"):
        with_overrides(small, [])


def test_every_preset_fits_the_default_budget():
    assert len(PRESETS) >= 19
    for name, cfg in PRESETS.items():
        assert budget.overruns(cfg, cfg.data.num_classes * cfg.data.samples_per_class) == [], name


VARIANTS = [("tiny", []), ("2022-12-14-vit6-1d-disc-journal-scale", []),
            ("2023-01-12-vit-ae-shared-decoders-journal-scale", []), ("2023-01-12-mae-two-decoders-different-targets", []),
            ("2022-12-08-vit1", ["model.contrastive.hidden_dim=48", "data.channels=3", "model.encoder.pos_embed=sincos",
                                 "model.encoder.mlp_ratio=2.5", "model.encoder.patch_size=2"])]


@pytest.mark.parametrize("name, overrides", VARIANTS)
def test_the_parameter_count_is_the_models_own(name, overrides):
    cfg = with_overrides(PRESETS[name], overrides)
    assert budget.parameter_count(cfg) == sum(p.numel() for p in ExperimentModel(cfg).parameters())


@pytest.mark.parametrize("name, overrides", VARIANTS)
def test_the_activation_estimate_is_within_a_factor_of_two_and_a_half_of_what_autograd_keeps(name, overrides):
    """What the forward pass saves for backward (distinct storages, bytes), against the estimate."""
    cfg = with_overrides(PRESETS[name], overrides)
    torch.manual_seed(0)
    model, d = ExperimentModel(cfg), cfg.data
    per_class = d.k_shot + d.q_queries
    images = torch.rand(d.n_way * per_class, d.channels, d.image_size, d.image_size)
    labels = torch.arange(d.n_way).repeat_interleave(per_class)
    is_query = torch.tensor(([False] * d.k_shot + [True] * d.q_queries) * d.n_way)
    kept: dict[int, int] = {}

    def remember(tensor: torch.Tensor) -> torch.Tensor:
        kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(remember, lambda tensor: tensor):
        model(images, labels, is_query)
    estimated = budget.estimate(cfg, 0).activation_bytes
    assert 0.4 < sum(kept.values()) / estimated < 2.5, (sum(kept.values()), estimated)
