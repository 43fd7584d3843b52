"""The training loop over episodes. Its only I/O is the sink (and checkpoint files, when given a folder)."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, cast

import torch

from data.prefetch import PrefetchingSampler
from engine.checkpoints import Checkpointer, capture_state, load_checkpoint, restore_rng, restore_weights
from engine.config import OptimConfig, RunConfig
from engine.distributed import Team, ranks
from engine.episode_source import EpisodeSource, load_episodes  # noqa: F401 - load_episodes: tests import it here
from engine.evaluation import summarise
from engine.figures import reconstruction_png
from engine.guard import DivergenceGuard, Incident, Stage, WatchedParameters, divergence_diagnostics
from engine.host_memory import keep_freed_memory
from engine.models import ExperimentModel, StepOutput, patchify, unpatchify
from engine.monitoring import MonitoredSink, SystemSampler, weights_and_gradients
from engine.sinks import NullSink, Sink
from engine.throughput import counting_flops, matmul_precision, run_peak, throughput_metrics

FIGURE_ROWS = 4
PARAMETER_NORM = "guard/parameter_norm"  # read with the metrics, never logged
MASKED_SUFFIX = "_masked"  # training accuracies on masked views (the run page explains the name)


@dataclass(frozen=True)
class TrainResult:
    status: str  # completed | stopped | diverged
    step: int
    report: dict[str, Any] | None


# --- device, precision, optimiser, schedule ----------------------------------------------------------------------


def pick_device(requested: str) -> torch.device:
    """`auto`: CUDA, then MPS, then CPU. An explicit device that is missing is an error, not a silent fallback."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("runtime.device: cuda was asked for but no CUDA device is visible")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("runtime.device: mps was asked for but MPS is not available")
    return torch.device(requested)


def uses_bf16(device: torch.device, precision: str) -> bool:
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the forward pass; the losses cast themselves to float32."""
    if uses_bf16(device, precision):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_optimizer(cfg: OptimConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def learning_rate(cfg: OptimConfig, total_steps: int, step: int) -> float:
    """Linear warm-up to `lr`, then constant or cosine down to `min_lr` at the last step (steps count from 1)."""
    if step <= cfg.warmup_episodes:
        return cfg.lr * step / cfg.warmup_episodes
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(total_steps - cfg.warmup_episodes, 1)
    progress = min((step - cfg.warmup_episodes) / span, 1.0)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


@contextlib.contextmanager
def rng_untouched(device: torch.device) -> Iterator[None]:
    """Evaluation and figures draw masks too; this keeps them from shifting training's random stream."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        yield


# --- metrics and figures -----------------------------------------------------------------------------------------


def step_scalars(out: StepOutput, prefix: str = "", masked: bool = False) -> dict[str, torch.Tensor]:
    """The tensors a step logs, not yet read back to the host (one transfer for all of them). `masked`: the
    accuracies were measured on masked views (MAE training), so they are `acc/<judge>_masked`, never under the
    name of the unmasked held-out `eval/acc/<judge>`."""
    scalars = {f"{prefix}loss/total": out.total.detach()}
    scalars.update({f"{prefix}loss/{k}": v.detach() for k, v in out.terms.items()})
    suffix = MASKED_SUFFIX if masked else ""
    scalars.update({f"{prefix}acc/{k}{suffix}": v.detach() for k, v in out.accuracy.items()})
    if out.features is not None:  # the journal's NaN was preceded by growing features: chart their size
        scalars[f"{prefix}feature_norm"] = out.features.detach().float().norm(dim=1).mean()
    return scalars


def to_floats(scalars: dict[str, torch.Tensor]) -> dict[str, float]:
    values = torch.stack([v.float() for v in scalars.values()]).tolist()
    return dict(zip(scalars.keys(), values))


@torch.no_grad()
def evaluate(model: ExperimentModel, source: EpisodeSource, cfg: RunConfig, device: torch.device
             ) -> tuple[dict[str, float], dict[str, Any]]:
    """The periodic evaluation, on the same held-out episodes each time: the losses at the training mask ratio
    (`eval/loss/…`), each judge's accuracy on unmasked images with its 95 % interval (`eval/acc/…`,
    `eval/ci95/…`; `seen/acc/…` on held-out images of the training classes), alignment and uniformity; and the
    held-out feature map the run page draws."""
    evaluator, episodes = source.evaluator, cfg.schedule.eval_episodes
    model.eval()
    metrics: dict[str, float] = {}
    with rng_untouched(device):
        torch.manual_seed(cfg.runtime.seed + 7)
        sampler = evaluator.sampler(seen=False)
        for _ in range(episodes):
            images, labels, is_query = source.batch(sampler)
            with autocast(device, cfg.runtime.precision):
                out = model(images, labels, is_query)
            for key, value in to_floats(step_scalars(out, "eval/")).items():
                if key.startswith("eval/loss/"):
                    metrics[key] = metrics.get(key, 0.0) + value / episodes
        with autocast(device, cfg.runtime.precision):
            for judge, summary in summarise(evaluator.judges(model, episodes)).items():
                metrics[f"eval/acc/{judge}"], metrics[f"eval/ci95/{judge}"] = summary["mean"], summary["ci95"]
            if evaluator.has_seen_test:
                for judge, summary in summarise(evaluator.judges(model, episodes, seen=True)).items():
                    metrics[f"seen/acc/{judge}"] = summary["mean"]
            features = evaluator.features(model)
    metrics["eval/alignment"], metrics["eval/uniformity"] = features["alignment"], features["uniformity"]
    model.train()
    return metrics, features


@torch.no_grad()
def reconstruction_figure(model: ExperimentModel, images: torch.Tensor, labels: torch.Tensor,
                          is_query: torch.Tensor, cfg: RunConfig, device: torch.device) -> bytes:
    """original | masked | one column per decoder, for the first FIGURE_ROWS images of an episode."""
    patch, channels = cfg.model.encoder.patch_size, cfg.data.channels
    model.eval()
    with rng_untouched(device), autocast(device, cfg.runtime.precision):
        out = model(images, labels, is_query)
    model.train()
    rows = slice(0, FIGURE_ROWS)
    original = images[rows].float()
    target = patchify(original, patch)
    removed = out.mask[rows][:, :, None]
    columns = [("original", original), ("masked", unpatchify(target * (1 - removed) + 0.5 * removed, patch, channels))]
    decoders = (cfg.model.decoders.first, cfg.model.decoders.second)
    for title, head, pred in zip(("decoder A", "decoder B"), decoders, out.predictions):
        pred = pred[rows].float()
        if head.target == "normalized":  # back to pixels with each true patch's own mean and spread
            pred = pred * (target.var(dim=-1, keepdim=True) + 1e-6).sqrt() + target.mean(dim=-1, keepdim=True)
        if head.target != "all":  # visible patches show the input, removed ones the guess, as in MAE's figures
            pred = target * (1 - removed) + pred * removed
        columns.append((title, unpatchify(pred, patch, channels)))
    return reconstruction_png([(title, t.cpu().numpy()) for title, t in columns])


# --- the loop ----------------------------------------------------------------------------------------------------


def train(cfg: RunConfig, sink: Sink, *, resume_from: str | Path | None = None,
          run_dir: str | Path | None = None) -> TrainResult:
    """Train `cfg` for `cfg.schedule.episodes` episodes, streaming into `sink`.

    resume_from: a checkpoint file or folder; the run continues from its step with the exact RNG state.
    run_dir: the run's folder: checkpoints go to its `checkpoints/`, the end-of-run few-shot report to its
    `eval.json` (with None, nothing is written to disk; the last checkpoint is kept in memory).
    The final status is sent as a `status` event and returned.

    With `runtime.processes` × `runtime.nodes` > 1 the run trains on that many processes, each on its share of
    every episode (`engine.distributed`): this process is rank 0 and starts the others itself, unless a launcher
    (torchrun, Slurm) already made it one of its ranks. Rank 0 alone writes to `sink` and `run_dir` and reads
    `resume_from`; the other ranks drop what they would write.
    """
    keep_freed_memory()  # each step reuses the memory the last one freed, rather than faulting it in afresh
    with ranks(cfg, pick_device(cfg.runtime.device)) as team:
        if not team.is_writer:
            return _train(cfg, NullSink(), resume_from, run_dir, team)
        if not cfg.runtime.system_metrics_seconds:
            return _train(cfg, sink, resume_from, run_dir, team)
        with SystemSampler(cfg.runtime.system_metrics_seconds) as sampler:
            return _train(cfg, MonitoredSink(sink, sampler), resume_from, run_dir, team)


def _train(cfg: RunConfig, sink: Sink, resume_from: str | Path | None, run_dir: str | Path | None,
           team: Team) -> TrainResult:
    device = team.device
    torch.manual_seed(cfg.runtime.seed)  # the same on every rank: the same weights, episodes and masks
    source = load_episodes(cfg, device)
    episodes = PrefetchingSampler(source.train, source.staged)  # the next episode is drawn while this one trains
    model = ExperimentModel(cfg).to(device)
    watched = WatchedParameters(model)  # before the optimiser, so that it holds the parameters as they now live
    optimizer = build_optimizer(cfg.optim, model)
    on_disk = run_dir is not None and team.is_writer
    checkpointer = Checkpointer(Path(run_dir) / "checkpoints" if on_disk and run_dir is not None else None)
    guard = DivergenceGuard(cfg.guard)
    config_values = cfg.model_dump(mode="json")

    def snapshot(at_step: int) -> dict[str, Any]:
        return capture_state(step=at_step, model=model, optimizer=optimizer, sampler_state=episodes.state(),
                             config=config_values)

    step = 0
    # rank 0 reads the checkpoint and hands it to the others: no folder has to be shared between nodes
    state = team.from_writer(load_checkpoint(resume_from) if resume_from is not None and team.is_writer else None)
    if state is not None:
        restore_weights(state, model, optimizer)
        source.train.set_state(state["sampler"])
        restore_rng(state)
        step = state["step"]
    checkpointer.remember(snapshot(step))  # rollback always has somewhere to go
    trained = team.wrap(model)  # what training steps call; evaluation and figures use `model` on rank 0 alone

    bf16 = uses_bf16(device, cfg.runtime.precision)
    peak = run_peak(device, bf16)  # MFU's denominator: the dense peak at the precision the products run in
    sink.log_event("started", {
        "step": step, "device": str(device), "precision": matmul_precision(device, bf16),
        "peak": asdict(peak) if peak else None, "parameters": sum(p.numel() for p in model.parameters()),
        "processes": team.world_size,
        "dataset": {"name": cfg.data.dataset, "images": len(source.evaluator.dataset.labels),
                    "classes": source.evaluator.dataset.num_classes,
                    "skipped_files": source.evaluator.dataset.skipped},
        "split": source.evaluator.split_record(),
    })

    def save_checkpoint() -> None:
        path = checkpointer.save(snapshot(step))
        if path is not None:
            sink.log_event("checkpoint", {"step": step, "path": str(path)})

    def finish(status: str) -> TrainResult:
        episodes.close()
        result = TrainResult(status, step, guard.report())
        sink.log_event("status", {"status": status, "step": step, "report": result.report})
        return result

    params = [p for p in model.parameters() if p.requires_grad]
    max_norm = cfg.optim.grad_clip or float("inf")
    schedule = cfg.schedule
    model.train()
    flops_per_step = step_flops(trained, source, cfg, team) * team.world_size
    while step < schedule.episodes:
        if team.agree_to_stop(sink.stop_requested()):
            save_checkpoint()
            return finish("stopped")
        step += 1
        lr = learning_rate(cfg.optim, schedule.episodes, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        started = time.perf_counter()
        images, labels, is_query = source.on_device(episodes.next())  # the whole episode, the same on every rank
        part = team.slice_of(len(labels))
        with autocast(device, cfg.runtime.precision):
            out = trained(images[part.rows], labels, is_query, part=part)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        norms: dict[str, float] = {}
        histograms: dict[str, Any] | None = None
        snapshot_seconds = 0.0
        if team.is_writer and schedule.histogram_every and step % schedule.histogram_every == 0:  # before clipping
            # The notebook's own snapshot, not training: its time is kept with it, out of the step's speed (a run
            # that ends on one would otherwise show about half its speed in the Runs table, which reads the last)
            taken = time.perf_counter()
            norms, histograms = weights_and_gradients(model)
            snapshot_seconds = time.perf_counter() - taken
        clipped_norm = torch.nn.utils.clip_grad_norm_(params, max_norm) if cfg.optim.grad_clip else None
        scalars = step_scalars(out, masked=cfg.model.masking.ratio > 0)
        # The update runs before anything is read, so the step never waits on the host: a non-finite loss or
        # gradient is undone afterwards (skip: the saved state; rollback: the checkpoint; stop: the run ends).
        guard.remember_update(model, optimizer)
        optimizer.step()
        # the gradients' norm (the update leaves them as they were) and the parameters' in one pass, unless
        # clipping already took the gradients' norm before the update
        grads = [] if clipped_norm is not None else [p.grad for p in params if p.grad is not None]
        grad_norm, scalars[PARAMETER_NORM] = guard.total_norms(grads, watched.tensors())
        scalars["grad_norm"] = grad_norm if clipped_norm is None else clipped_norm
        metrics = to_floats(scalars)  # the one device-to-host read of the step
        parameter_norm = metrics.pop(PARAMETER_NORM)
        metrics.update(norms)
        loss_terms = {k.removeprefix("loss/"): v for k, v in metrics.items() if k.startswith("loss/")}
        stage, reason = "loss", guard.check_loss(loss_terms, metrics["loss/total"])
        if reason is None:
            stage, reason = "gradient", guard.check_gradient(metrics["grad_norm"])
        if reason is None:
            stage, reason = "parameters", guard.check_parameter_norm(parameter_norm, model)
        stage, reason = team.agree_on_incident(stage, reason)  # a non-finite value on any rank acts on all
        metrics["lr"] = lr
        seconds = time.perf_counter() - started - snapshot_seconds
        metrics["images_per_s"] = len(labels) / max(seconds, 1e-9)
        metrics.update(throughput_metrics(flops_per_step, seconds, peak.tflops * team.world_size if peak else None))
        if histograms is not None:  # written once the step's clock has stopped, as its metrics are
            sink.log_event("histograms", {"step": step, "groups": histograms, "seconds": snapshot_seconds})
        sink.log_metrics(step, metrics)

        if reason is not None:
            found = guard.incident(step, cast(Stage, stage), reason,
                                   divergence_diagnostics(out.features, out.embedding, cfg.loss, lr,
                                                          labels=labels))
            recovered = _recover(found, guard, model, optimizer, checkpointer)
            sink.log_event("divergence", asdict(found))
            if not recovered:
                return finish("diverged")
            continue
        guard.record_finite(step, metrics)

        last = step == schedule.episodes
        # rank 0 evaluates and draws alone, on the whole model; the other ranks wait for it at the next step
        if team.is_writer and (step % schedule.eval_every == 0 or last):
            metrics, features = evaluate(model, source, cfg, device)
            sink.log_metrics(step, metrics)
            sink.log_event("features", {"step": step, **features})
        if team.is_writer and cfg.model.decoders.count and (step % schedule.image_every == 0 or last):
            sink.log_image("reconstruction", step,
                           reconstruction_figure(model, images, labels, is_query, cfg, device))
        if step % schedule.checkpoint_every == 0 or last:
            save_checkpoint()  # every rank keeps it as its rollback point; rank 0 alone writes the file
    if schedule.final_eval_episodes and team.is_writer:
        with rng_untouched(device), autocast(device, cfg.runtime.precision):
            report = source.evaluator.report(model, step)
        sink.log_event("evaluation", report)  # fenced first: an attempt that lost the run writes no file either
        if run_dir is not None:
            (Path(run_dir) / "eval.json").write_text(json.dumps(report, indent=1))
    return finish("completed")


def step_flops(trained: torch.nn.Module, source: EpisodeSource, cfg: RunConfig, team: Team) -> int:
    """One training step's FLOPs on this process (forward and backward), counted on a step of its own: the
    counter slows the step it watches, so no timed step is a counted one. It leaves no trace: the episodes,
    masks and gradients that follow are those of a run that never counted."""
    sampler_state = source.train.state()
    with rng_untouched(team.device), counting_flops() as found:
        images, labels, is_query = source.batch(source.train)
        part = team.slice_of(len(labels))
        with autocast(team.device, cfg.runtime.precision):
            out = trained(images[part.rows], labels, is_query, part=part)
        out.total.backward()
    source.train.set_state(sampler_state)
    trained.zero_grad(set_to_none=True)
    return found.total


def _recover(found: Incident, guard: DivergenceGuard, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             checkpointer: Checkpointer) -> bool:
    """Carry out the incident's action; False means the run ends."""
    optimizer.zero_grad(set_to_none=True)
    if found.action == "skip":
        if found.stage == "parameters":
            guard.undo_update(model)  # the update itself was bad: put the parameters back as they were
        else:
            guard.undo_update(model, optimizer)  # the step ran before the check: as if it never had
        return True
    if found.action == "rollback" and checkpointer.last_good is not None:
        restore_weights(checkpointer.last_good, model, optimizer)
        found.diagnostics["rolled_back_to_step"] = checkpointer.last_good["step"]
        return True
    return False


