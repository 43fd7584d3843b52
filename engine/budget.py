"""The resource budget: what one run may ask of a machine, judged from its config alone, before anything is
allocated. Each field has its own bounds; together they can still ask for a run that cannot fit (256 px colour
images, 5,000 a class, patch 1, 5,120 images an episode, a 48-deep 1,536-wide ViT: 39 GB of pixels and 65,536
tokens an image). `RunConfig` validation calls `overruns`, and a config over budget is refused with the fields
and the estimate in the message, like any other validation error, in the form and the CLI.

The limits live here, one `Limits` record; each can be set per deployment by an environment variable named
`LAB_BUDGET_<FIELD>` (e.g. `LAB_BUDGET_DATASET_GB=32`). The defaults let every preset and test config through.
No torch: the parameter count and activation memory are arithmetic on the config.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping

# engine.config.RunConfig, named and not imported: config imports this module (its validation calls `overruns`)
RunConfig = Any

BYTES_PER_VALUE = 4  # pixels load as float32 (data.LabelledImages); training keeps float32 activations
GB = 1e9
DECODER_MLP_RATIO = 4.0  # engine.models.decoders.MaskedDecoder's default


@dataclass(frozen=True)
class Limits:
    """What one run may ask for. Each can be set by $LAB_BUDGET_<NAME IN CAPITALS>."""

    dataset_gb: float = 8.0  # the dataset's pixels, held in memory as float32
    tokens_per_image: int = 4096  # patches an image: a 64 x 64 grid
    images_per_episode: int = 2048  # one optimiser step's batch
    parameters_millions: float = 1000.0  # trainable parameters, all modules
    activation_gb: float = 64.0  # activations one process keeps for the backward pass
    processes_per_host: int = 16  # runtime.processes: processes started on one machine
    episodes: int = 10_000_000  # schedule.episodes (the field's own bound; lower it per deployment)
    images_trained_millions: float = 1000.0  # episodes x images an episode: the run's compute
    final_eval_episodes: int = 10_000  # the end-of-run few-shot report


def variable_for(name: str) -> str:
    """The environment variable that sets limit `name`: dataset_gb -> LAB_BUDGET_DATASET_GB."""
    return f"LAB_BUDGET_{name.upper()}"


def limits_here(environment: Mapping[str, str] | None = None) -> Limits:
    """The limits of this deployment: each $LAB_BUDGET_* that is set, else the default; ValueError naming the
    variable when one is not a positive number."""
    told = os.environ if environment is None else environment
    chosen: dict[str, Any] = {}
    for field in fields(Limits):
        text = told.get(variable_for(field.name), "").strip()
        if not text:
            continue
        kind = float if field.type in (float, "float") else int
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"${variable_for(field.name)}={text!r} is not {'a' if kind is float else 'a whole'} "
                             "number") from None
        if not value > 0:
            raise ValueError(f"${variable_for(field.name)}={text!r} must be more than 0")
        chosen[field.name] = value
    return Limits(**chosen)


@dataclass(frozen=True)
class Overrun:
    """One limit a config goes over, at the field a person would change first, with the estimate in words."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class OverBudget(ValueError):
    """Raised by RunConfig validation; `overruns` lists every limit passed (ConfigError gives each its own line)."""

    def __init__(self, overruns: list[Overrun]) -> None:
        self.overruns = overruns
        super().__init__("; ".join(str(o) for o in overruns))


@dataclass(frozen=True)
class Estimate:
    """What a config asks for, computed from the config alone."""

    dataset_bytes: int
    tokens_per_image: int
    images_per_episode: int
    images_per_process: int
    parameters: int
    activation_bytes: int


def _gigabytes(count: float) -> str:
    """39.3 for 39.3e9; three significant digits below one (0.000205), so a small estimate never reads 0.0."""
    return f"{count / GB:,.1f}" if count >= GB else f"{count / GB:.3g}"


def _block_parameters(width: int, mlp_ratio: float) -> int:
    """timm's Block with qkv bias: 2 LayerNorms, qkv, projection and a 2-layer MLP."""
    hidden = int(width * mlp_ratio)
    return 4 * width * width + 2 * width * hidden + hidden + 9 * width


def _block_activation_values(tokens: int, width: int, heads: int, mlp_ratio: float) -> float:
    """Values one block keeps for backward, one image: per token its input, norms, q/k/v, attention output,
    projection and the MLP's hidden layer before and after GELU; per head the T x T scores and their softmax."""
    return tokens * width * (8 + 2 * mlp_ratio) + 2 * heads * tokens * tokens


def parameter_count(cfg: "RunConfig") -> int:
    """Trainable parameters of the model `cfg` builds (engine.models.ExperimentModel), by arithmetic."""
    enc, dec, data, model = cfg.model.encoder, cfg.model.decoders, cfg.data, cfg.model
    width, patches = enc.embed_dim, cfg.num_patches
    patch_pixels = enc.patch_size ** 2 * data.channels
    total = patch_pixels * width + width + width + (patches + 1) * width + 2 * width  # patch embed, cls, pos, norm
    total += enc.depth * _block_parameters(width, enc.mlp_ratio)
    if model.contrastive.enabled:
        head, hidden = model.contrastive, model.contrastive.hidden_dim
        total += (width * hidden + hidden + hidden * head.feature_dim + head.feature_dim if hidden
                  else width * head.feature_dim + head.feature_dim)
    if model.discriminator.enabled:
        hidden = model.discriminator.hidden_dim
        total += 4 * width * hidden + hidden + hidden + 1
    if dec.count:
        d = dec.embed_dim
        one = (width * d + d + d + (patches + 1) * d + dec.depth * _block_parameters(d, DECODER_MLP_RATIO)
               + 2 * d + d * patch_pixels + patch_pixels)
        total += one * (1 if dec.share else dec.count)
    return total


def estimate(cfg: "RunConfig", dataset_images: int) -> Estimate:
    """What `cfg` asks for; `dataset_images` is how many images its dataset holds (data.class_sizes)."""
    data, enc, dec = cfg.data, cfg.model.encoder, cfg.model.decoders
    images = data.n_way * (data.k_shot + data.q_queries)
    per_process = math.ceil(images / (cfg.runtime.processes * cfg.runtime.nodes))
    patches = cfg.num_patches
    kept = int(patches * (1 - cfg.model.masking.ratio)) + 1  # the encoder sees the kept patches and its class token
    values = enc.depth * _block_activation_values(kept, enc.embed_dim, enc.num_heads, enc.mlp_ratio)
    values += dec.count * dec.depth * _block_activation_values(patches + 1, dec.embed_dim, dec.num_heads,
                                                               DECODER_MLP_RATIO)  # shared: run twice all the same
    return Estimate(
        dataset_bytes=dataset_images * data.image_size ** 2 * data.channels * BYTES_PER_VALUE,
        tokens_per_image=patches, images_per_episode=images, images_per_process=per_process,
        parameters=parameter_count(cfg), activation_bytes=int(per_process * values * BYTES_PER_VALUE))


def overruns(cfg: "RunConfig", dataset_images: int, limits: Limits | None = None) -> list[Overrun]:
    """Every limit of `limits` (this deployment's by default) that `cfg` goes over, each naming the fields."""
    limits = limits or limits_here()
    e = estimate(cfg, dataset_images)
    data, enc, schedule = cfg.data, cfg.model.encoder, cfg.schedule
    found: list[Overrun] = []

    def over(path: str, what: str, limit_name: str, limit_text: str, why: str) -> None:
        found.append(Overrun(path, f"{what} > budget {limit_text} (${variable_for(limit_name)}): {why}"))

    if e.dataset_bytes > limits.dataset_gb * GB:
        source = (f"data.num_classes × data.samples_per_class × data.image_size² × data.channels × 4 bytes = "
                  f"{data.num_classes} × {data.samples_per_class:,}" if data.dataset == "shapes" else
                  f"images in the dataset × data.image_size² × data.channels × 4 bytes = {dataset_images:,}")
        over("data.samples_per_class" if data.dataset == "shapes" else "data.image_size",
             f"dataset {_gigabytes(e.dataset_bytes)} GB in memory", "dataset_gb", f"{limits.dataset_gb:g} GB",
             f"{source} × {data.image_size}² × {data.channels} × 4")
    if e.tokens_per_image > limits.tokens_per_image:
        over("model.encoder.patch_size", f"{e.tokens_per_image:,} tokens an image", "tokens_per_image",
             f"{limits.tokens_per_image:,}", f"(data.image_size / model.encoder.patch_size)² = "
             f"({data.image_size} / {enc.patch_size})²")
    if e.images_per_episode > limits.images_per_episode:
        over("data.n_way", f"{e.images_per_episode:,} images an episode", "images_per_episode",
             f"{limits.images_per_episode:,}", f"data.n_way × (data.k_shot + data.q_queries) = {data.n_way} × "
             f"({data.k_shot} + {data.q_queries})")
    if e.parameters > limits.parameters_millions * 1e6:
        over("model.encoder.depth", f"model of about {e.parameters / 1e6:,.0f} M parameters", "parameters_millions",
             f"{limits.parameters_millions:,g} M", f"model.encoder.depth × ~(4 + 2 × model.encoder.mlp_ratio) × "
             f"model.encoder.embed_dim², plus decoders and heads = {enc.depth} blocks of width {enc.embed_dim}")
    if e.activation_bytes > limits.activation_gb * GB:
        over("model.encoder.embed_dim", f"activations of about {_gigabytes(e.activation_bytes)} GB a process",
             "activation_gb", f"{limits.activation_gb:g} GB",
             f"images a process ({e.images_per_process:,} = images an episode ÷ (runtime.processes × runtime.nodes)) "
             f"× model.encoder.depth × (tokens × model.encoder.embed_dim × (8 + 2 × mlp_ratio) + 2 × num_heads × "
             f"tokens²) × 4 bytes, with {e.tokens_per_image:,} tokens, depth {enc.depth}, width {enc.embed_dim}, "
             "plus the decoders")
    if cfg.runtime.processes > limits.processes_per_host:
        over("runtime.processes", f"{cfg.runtime.processes} processes on one host", "processes_per_host",
             f"{limits.processes_per_host}", "runtime.processes are all started on the same machine")
    if schedule.episodes > limits.episodes:
        over("schedule.episodes", f"{schedule.episodes:,} episodes", "episodes", f"{limits.episodes:,}",
             "schedule.episodes")
    trained = schedule.episodes * e.images_per_episode
    if trained > limits.images_trained_millions * 1e6:
        over("schedule.episodes", f"{trained / 1e6:,.0f} M images trained", "images_trained_millions",
             f"{limits.images_trained_millions:,g} M", f"schedule.episodes × data.n_way × (data.k_shot + "
             f"data.q_queries) = {schedule.episodes:,} × {e.images_per_episode:,}")
    if schedule.final_eval_episodes > limits.final_eval_episodes:
        over("schedule.final_eval_episodes", f"{schedule.final_eval_episodes:,} evaluation episodes",
             "final_eval_episodes", f"{limits.final_eval_episodes:,}", "schedule.final_eval_episodes")
    return found
