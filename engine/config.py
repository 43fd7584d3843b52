"""`RunConfig`: the one typed, frozen description of an experiment (its lint: `engine.lint`; presets:
`engine.presets`).

The app generates its form from this schema (bounds, defaults and the one-line `description` of every field), so
a new field appears in the form without page code. Validation errors name the dotted field path.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data import check_split, class_sizes
from engine import budget
from engine.field_labels import LABELS, label_in_words  # noqa: F401 - the form's words, re-exported for the app
from engine.safe_strings import refuse_control_characters, sbatch_flag, slurm_name


class Section(BaseModel):
    """Every section is frozen and rejects keys it does not know; no string in it holds a line break or other
    control character (`engine.safe_strings`), whatever field it is in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _one_line_of_text(cls, value: Any) -> Any:
        return refuse_control_characters(value)


def data_root() -> Path:
    """The one folder runs may read datasets from: $LAB_DATA_DIR, else ./datasets."""
    return Path(os.environ.get("LAB_DATA_DIR") or "datasets").resolve()


def resolve_data_path(path: str) -> Path:
    """`path` (relative to the data root, or absolute) as a real path inside the data root; ValueError naming
    `data.path` otherwise, so a run cannot read (and draw) any file the server's user can read."""
    root = data_root()
    resolved = (root / path).resolve()  # follows symbolic links: one leading out of the root is refused too
    if not resolved.is_relative_to(root):
        raise ValueError(f"data.path: '{path}' is outside the data folder {root} ($LAB_DATA_DIR); put the dataset "
                         "there and name it relative to it")
    if not resolved.exists():
        raise ValueError(f"data.path: '{path}' does not exist in the data folder {root}")
    return resolved


def data_choices() -> list[str]:
    """What the data root offers: its folders (one sub-folder per class) and .npz files, relative to it."""
    root = data_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() or p.suffix == ".npz")


class DataConfig(Section):
    dataset: Literal["shapes", "digits", "folder", "npz"] = Field(
        "shapes", description="Image source: procedural shapes, bundled digits, your own folder, or a .npz file")
    path: str | None = Field(None, description="folder/npz only: a folder (one sub-folder per class) or .npz file "
                                               "inside the data folder ($LAB_DATA_DIR, default ./datasets)")
    image_size: int = Field(16, ge=8, le=256, description="Images are resized to this many pixels a side")
    channels: Literal[1, 3] = Field(1, description="1 for grey, 3 for colour")
    num_classes: int = Field(10, ge=2, le=10, description="shapes only: number of shape classes")
    samples_per_class: int = Field(60, ge=4, le=5000, description="shapes only: images generated per class")
    n_way: int = Field(5, ge=2, le=64, description="Classes per episode (N)")
    k_shot: int = Field(4, ge=1, le=256, description="Support images per class (K)")
    q_queries: int = Field(4, ge=1, le=256, description="Query images per class (Q)")
    holdout_classes: int | None = Field(None, ge=0, le=63, description=(
        "Classes kept out of training, the few-shot test (empty = n_way of them; 0 = judge on held-out images of "
        "the training classes)"))
    holdout_images: float = Field(0.2, ge=0.0, le=0.9, description=(
        "Fraction of each training class's images kept out of training, the seen-class test"))
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed for generating and splitting the data")


class EncoderConfig(Section):
    patch_size: int = Field(4, ge=1, le=64, description="Pixels per patch side; must divide the image size")
    embed_dim: int = Field(32, ge=8, le=1536, description="Token width of the ViT")
    depth: int = Field(1, ge=1, le=48, description="Number of transformer blocks")
    num_heads: int = Field(2, ge=1, le=32, description="Attention heads; must divide the width")
    mlp_ratio: float = Field(4.0, gt=0, le=16, description="MLP hidden width as a multiple of the token width")
    pos_embed: Literal["learnable", "sincos"] = Field(
        "learnable", description="Learnable (timm init, std 0.02) or fixed 2-D sin-cos position embedding")


class MaskingConfig(Section):
    ratio: float = Field(0.0, ge=0.0, lt=1.0, description="MAE masking in the encoder: fraction of patches removed")


class ContrastiveConfig(Section):
    enabled: bool = Field(True, description="Train the encoder with supervised InfoNCE over each episode")
    feature_dim: int = Field(2, ge=1, le=1024, description="Width of the projected features fed to InfoNCE")
    hidden_dim: int = Field(0, ge=0, le=4096, description="Hidden width of the projection MLP (0 = linear)")


class DiscriminatorConfig(Section):
    enabled: bool = Field(False, description="Score (query, class prototype) pairs; gives the episode accuracy")
    hidden_dim: int = Field(64, ge=4, le=4096, description="Hidden width of the discriminator MLP")
    detach: bool = Field(False, description=(
        "Probe: learn on frozen (detached) features, so its accuracy measures them; off: trained jointly with the "
        "encoder (as in the journal), so its accuracy is part of the training objective"))


class DecoderTarget(Section):
    target: Literal["masked", "all", "normalized"] = Field(
        "masked", description="Reconstruct masked patches, all patches, or per-patch normalised pixels (masked)")
    weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of this decoder's loss in the total")


class DecodersConfig(Section):
    count: Literal[0, 1, 2] = Field(0, description="Decoders fed the same encoder output (0, 1 or 2)")
    share: bool = Field(False, description="Two decoders: one module used twice (true) or two copies (false)")
    embed_dim: int = Field(32, ge=8, le=1536, description="Decoder token width")
    depth: int = Field(1, ge=1, le=24, description="Decoder transformer blocks")
    num_heads: int = Field(2, ge=1, le=32, description="Decoder attention heads; must divide its width")
    pos_embed: Literal["learnable", "sincos"] = Field(
        "sincos", description="Decoder position embedding: fixed 2-D sin-cos (MAE) or learnable (timm's default)")
    first: DecoderTarget = Field(default_factory=DecoderTarget, description="Decoder A")
    second: DecoderTarget = Field(default_factory=DecoderTarget, description="Decoder B")


class ModelConfig(Section):
    encoder: EncoderConfig = Field(default_factory=EncoderConfig, description="ViT encoder")
    masking: MaskingConfig = Field(default_factory=MaskingConfig, description="MAE masking")
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig, description="Contrastive head")
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig, description="Discriminator")
    decoders: DecodersConfig = Field(default_factory=DecodersConfig, description="Reconstruction decoders")


class LossConfig(Section):
    temperature: float = Field(0.1, gt=0.0, le=100.0, description="InfoNCE temperature τ")
    denominator: Literal["all", "negatives"] = Field(
        "all", description="InfoNCE denominator over all other samples, or over other-class samples only")
    normalize: bool = Field(True, description="L2-normalise features before InfoNCE")
    base_temperature: float | None = Field(None, gt=0.0, le=100.0,
                                           description="If set, scale the loss by τ / base temperature (SupCon)")
    log_sum_exp: bool = Field(True, description=(
        "Stable log-sum-exp softmax; false computes exp then divides, as the 2022 journal code did (overflows)"))
    no_positive: Literal["exclude", "zero"] = Field("exclude", description=(
        "InfoNCE anchors with no positive (lone in their class): left out of the mean, or counted as 0 (SupCon)"))
    contrastive_weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of InfoNCE in the total loss")
    discriminator_weight: float = Field(1.0, ge=0.0, le=100.0, description="Weight of the discriminator loss")


class OptimConfig(Section):
    optimizer: Literal["adamw", "adam", "sgd"] = Field("adamw", description="Optimiser")
    lr: float = Field(1e-3, gt=0.0, le=10.0, description="Peak learning rate")
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="Decoupled (AdamW) or L2 (Adam, SGD) decay")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    schedule: Literal["constant", "cosine"] = Field("constant", description="Learning-rate schedule after warm-up")
    warmup_episodes: int = Field(0, ge=0, le=1_000_000, description="Linear warm-up length in episodes")
    min_lr: float = Field(0.0, ge=0.0, le=10.0, description="Cosine schedule's final learning rate")
    grad_clip: float = Field(0.0, ge=0.0, le=1e6, description="Clip the gradient norm to this (0 = off)")


class ScheduleConfig(Section):
    episodes: int = Field(200, ge=1, le=10_000_000, description="Training episodes (one optimiser step each)")
    eval_every: int = Field(50, ge=1, le=1_000_000, description="Evaluate every this many episodes")
    eval_episodes: int = Field(20, ge=1, le=1000, description="Held-out episodes per evaluation during training")
    final_eval_episodes: int = Field(600, ge=0, le=100_000, description=(
        "Held-out episodes in the end-of-run few-shot report (600 as ProtoNets reports; 0 = none)"))
    image_every: int = Field(50, ge=1, le=1_000_000, description="Log a reconstruction figure every this many")
    checkpoint_every: int = Field(100, ge=1, le=1_000_000, description="Save a checkpoint every this many")
    histogram_every: int = Field(100, ge=0, le=1_000_000, description=(
        "Log per-layer weight and gradient norms and histograms every this many episodes (0 = never)"))


class GuardConfig(Section):
    policy: Literal["stop", "skip", "rollback"] = Field(
        "stop", description="On a non-finite loss, gradient or parameter: stop, skip the step, or roll back")
    max_incidents: int = Field(3, ge=1, le=1000, description=(
        "Stop at the Nth incident: skip/rollback handle the N−1 before it (1 = the first stops the run)"))


class SlurmConfig(Section):
    partition: str | None = Field(None, max_length=100, description=(
        "Slurm partition the job is queued on (empty = the cluster's default)"))
    account: str | None = Field(None, max_length=100, description=(
        "Slurm account the job is charged to (empty = your default account)"))
    time_limit_minutes: int = Field(60, ge=1, le=60 * 24 * 14, description=(
        "Wall-clock limit of one job; at the limit the run checkpoints and the job is requeued, resuming there"))
    gpus_per_task: int = Field(0, ge=0, le=16, description="GPUs each process gets (one process per GPU on CUDA)")
    cpus_per_task: int = Field(1, ge=1, le=256, description="CPU cores each process gets")
    extra_flags: list[str] = Field(default_factory=list, max_length=32, description=(
        "More sbatch flags, each --name=value (e.g. --qos=high --constraint=a100)"))

    @field_validator("extra_flags")
    @classmethod
    def _flags_are_plain(cls, flags: list[str]) -> list[str]:
        return [sbatch_flag(flag) for flag in flags]

    @field_validator("partition")
    @classmethod
    def _partitions_are_names(cls, value: str | None) -> str | None:
        return slurm_name(value, many=True)

    @field_validator("account")
    @classmethod
    def _account_is_a_name(cls, value: str | None) -> str | None:
        return slurm_name(value)


class RuntimeConfig(Section):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("auto", description="auto = CUDA, then MPS, then CPU")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto = bf16 autocast on CUDA, else fp32")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed for weights, episodes and masks")
    system_metrics_seconds: float = Field(5.0, ge=0.0, le=3600.0, description=(
        "Sample CPU, memory and GPU use every this many seconds while training (0 = never)"))
    processes: int = Field(1, ge=1, le=64, description=(
        "Processes per node, each training on its share of every episode (one GPU each on CUDA, else CPU "
        "threads shared out); the features are gathered so the losses see the whole episode"))
    nodes: int = Field(1, ge=1, le=64, description=(
        "Machines the run spans; more than one needs a launcher that starts the processes on each (Slurm, "
        "torchrun)"))
    executor: Literal["local", "slurm"] = Field("local", description=(
        "Where the run executes: local = a process of the worker's machine; slurm = a job submitted to the "
        "Slurm cluster (settings below)"))
    slurm: SlurmConfig = Field(default_factory=SlurmConfig, description="Slurm job (executor slurm only)")
    host: str | None = Field(None, max_length=200, description=(
        "Only a worker with this host id may run it (`engine worker --host-id`, $LAB_HOST_ID, else the "
        "hostname; empty = any host)"))
    gpu_kind: str | None = Field(None, max_length=100, description=(
        "Only a worker with a GPU whose name contains this may run it, any case (e.g. H100; empty = any "
        "worker, GPU or not)"))


class RunConfig(Section):
    """One experiment, complete: what a run was launched with never changes."""

    data: DataConfig = Field(default_factory=DataConfig, description="Data and episodes")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model")
    loss: LossConfig = Field(default_factory=LossConfig, description="Losses")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="Optimiser and schedule")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="Run length and intervals")
    guard: GuardConfig = Field(default_factory=GuardConfig, description="Divergence guard")
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig,
                                   description="Device, precision, seed and processes")

    @model_validator(mode="after")
    def _fields_agree(self) -> "RunConfig":
        # Raised as "path: sentence" so ConfigError can put the message next to the field.
        enc, dec, data = self.model.encoder, self.model.decoders, self.data
        if data.image_size % enc.patch_size:
            raise ValueError(f"model.encoder.patch_size: {enc.patch_size} does not divide "
                             f"data.image_size {data.image_size}")
        if enc.embed_dim % enc.num_heads:
            raise ValueError(f"model.encoder.num_heads: {enc.num_heads} does not divide embed_dim {enc.embed_dim}")
        if dec.count and dec.embed_dim % dec.num_heads:
            raise ValueError(f"model.decoders.num_heads: {dec.num_heads} does not divide embed_dim {dec.embed_dim}")
        if data.dataset in ("folder", "npz") and not data.path:
            raise ValueError(f"data.path: the {data.dataset} dataset needs a path")
        if data.path:
            resolve_data_path(data.path)
        if data.dataset == "shapes" and data.n_way > data.num_classes:
            raise ValueError(f"data.n_way: {data.n_way} exceeds the {data.num_classes} shape classes")
        dataset_images = sum(_check_split(data))
        if not (self.model.contrastive.enabled or self.model.discriminator.enabled or dec.count):
            raise ValueError("model.contrastive.enabled: nothing to train (no contrastive head, disc or decoder)")
        ranks, images = self.runtime.processes * self.runtime.nodes, data.n_way * (data.k_shot + data.q_queries)
        if ranks > images:
            raise ValueError(f"runtime.processes: {ranks} processes in all but only {images} images an episode; "
                             "each process needs at least one")
        if ranks > 1 and self.runtime.device == "mps":
            raise ValueError("runtime.device: several processes need CPU (gloo) or CUDA (NCCL); MPS has neither")
        if not (self.model.contrastive.enabled or dec.count) and self.model.discriminator.detach:
            raise ValueError("model.discriminator.detach: a detached discriminator is a probe and trains no encoder; "
                             "with no contrastive head or decoder nothing would train it")
        try:
            limits = budget.limits_here()
        except ValueError as error:
            raise ValueError(f"budget: {error}") from None
        overruns = budget.overruns(self, dataset_images, limits)
        if overruns:
            raise budget.OverBudget(overruns)
        return self

    @property
    def num_patches(self) -> int:
        return (self.data.image_size // self.model.encoder.patch_size) ** 2


def _check_split(data: DataConfig) -> list[int]:
    """At submit time, not at the first evaluation: can this dataset give training and evaluation episodes?
    Returns its images per class."""
    path = str(resolve_data_path(data.path)) if data.path else None
    sizes = class_sizes(data.dataset, path=path, num_classes=data.num_classes,
                        samples_per_class=data.samples_per_class)
    check_split(sizes, n_way=data.n_way, k_shot=data.k_shot, q_queries=data.q_queries,
                holdout_classes=data.holdout_classes, holdout_images=data.holdout_images)
    return sizes


# --- errors that name the field ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) with a config, at a dotted field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(ValueError):
    """A config that does not validate; `problems` lists each field path with its message."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @classmethod
    def from_validation_error(cls, error: ValidationError) -> "ConfigError":
        problems = []
        for item in error.errors():
            over = item.get("ctx", {}).get("error")
            if isinstance(over, budget.OverBudget):  # every limit passed, each at its own field
                problems.extend(Problem(o.path, o.message) for o in over.overruns)
                continue
            path = ".".join(str(part) for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if not path and ": " in message:
                path, message = message.split(": ", 1)
            if item["type"] == "extra_forbidden":
                message = "unknown key"
            problems.append(Problem(path or "(config)", message))
        return cls(problems)


def validate_config(values: dict[str, Any]) -> RunConfig:
    """A RunConfig from plain values, or ConfigError naming each field at fault."""
    try:
        return RunConfig.model_validate(values)
    except ValidationError as error:
        raise ConfigError.from_validation_error(error) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], value), the value read as JSON when it parses (numbers, true, null) else text."""
    if "=" not in text:
        raise ConfigError([Problem(text, "an override is written path=value, e.g. optim.lr=0.01")])
    path, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path.strip().split("."), value


def with_overrides(cfg: RunConfig, overrides: list[str] | tuple[str, ...]) -> RunConfig:
    """A new config with `path=value` overrides applied and validated (the original is frozen and unchanged)."""
    values = cfg.model_dump()
    for text in overrides:
        keys, value = parse_override(text)
        node = values
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node.get(key), dict):
                raise ConfigError([Problem(".".join(keys[: depth + 1]), "unknown section")])
            node = node[key]
        node[keys[-1]] = value
    return validate_config(values)


def fields_set(values: dict[str, Any]) -> list[str]:
    """The dotted paths of the fields where `values` (a config as a dict, from a preset or a stored run, perhaps
    from before some fields existed) differs from RunConfig()'s defaults, in the schema's order: what an
    experiment sets. A field the dict lacks is at its default."""
    found: list[str] = []

    def walk(default: Any, value: Any, path: str) -> None:
        if isinstance(default, dict):
            for key, inner in default.items():
                if isinstance(value, dict) and key in value:
                    walk(inner, value[key], f"{path}{key}." if isinstance(inner, dict) else f"{path}{key}")
        elif value != default:
            found.append(path)

    walk(_defaults(), values, "")
    return found


@functools.cache
def _defaults() -> dict[str, Any]:
    """Built on first use, not at import: RunConfig() checks that the default data can be split. Read only."""
    return RunConfig().model_dump(mode="json")
