"""The divergence guard: checks loss, gradient norm and parameters every step, and on a non-finite value
records what happened (the step, the last finite values, diagnostics) and says what the run's policy does."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from engine.config import GuardConfig, LossConfig
from engine.losses import info_nce

Action = Literal["stop", "skip", "rollback"]
Stage = Literal["loss", "gradient", "parameters"]  # where a non-finite value was found


@dataclass
class Incident:
    step: int
    stage: Stage
    reason: str
    action: Action
    last_finite: dict[str, float]
    last_finite_step: int | None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class WatchedParameters:
    """Every parameter of a model (frozen ones too) as the guard's per-step norm reads them: moved into one buffer
    per dtype and device, each parameter a view of its part, so that their norm is one reduction a buffer rather
    than one per tensor (on a CPU, most of its cost for a small model's many small tensors). Values, training and
    checkpoints are unchanged: only where the parameters live. Each part starts on a 64-byte boundary, as PyTorch's
    own flat parameters do, since GPU kernels (foreach optimisers, cuBLAS) pick slower paths for misaligned memory;
    the padding is zeros, which the norm does not see. A model whose parameters share memory with each other, or
    are not contiguous (channels_last), is left as it is: one buffer would break the tie or change the layout.
    Should anything swap a parameter's storage, the views no longer cover it and `tensors()` falls back to each
    parameter: the norm is never a stale buffer's."""

    ALIGN_BYTES = 64

    def __init__(self, model: torch.nn.Module) -> None:
        self._parameters = list(model.parameters())
        self.buffers: list[torch.Tensor] = [p.detach() for p in self._parameters]
        storages = {p.untyped_storage().data_ptr() for p in self._parameters}
        if len(storages) == len(self._parameters) and all(p.is_contiguous() for p in self._parameters):
            self.buffers = self._gathered()
        self._pointers = self._data_pointers()

    def _gathered(self) -> list[torch.Tensor]:
        groups: dict[tuple[torch.dtype, torch.device], list[torch.nn.Parameter]] = {}
        for p in self._parameters:
            groups.setdefault((p.dtype, p.device), []).append(p)
        buffers = []
        with torch.no_grad():
            for (dtype, device), parameters in groups.items():
                align = max(1, self.ALIGN_BYTES // parameters[0].element_size())
                starts = [0]
                for p in parameters:
                    starts.append(starts[-1] + -(-p.numel() // align) * align)
                flat = torch.zeros(starts[-1], dtype=dtype, device=device)
                for p, start in zip(parameters, starts):
                    part = flat[start:start + p.numel()].view(p.shape)
                    part.copy_(p)
                    p.data = part
                buffers.append(flat)
        return buffers

    def _data_pointers(self) -> list[int]:
        return list(map(torch.Tensor.data_ptr, self._parameters))

    def tensors(self) -> list[torch.Tensor]:
        """What covers every parameter now: the buffers, or (the views broken) each parameter."""
        if self._data_pointers() == self._pointers:
            return self.buffers
        return [p.detach() for p in self._parameters]


class DivergenceGuard:
    def __init__(self, cfg: GuardConfig) -> None:
        self.policy: Action = cfg.policy
        self.max_incidents = cfg.max_incidents
        self.incidents: list[Incident] = []
        self.grad_norms: deque[float] = deque(maxlen=20)
        self.last_finite: dict[str, float] = {}
        self.last_finite_step: int | None = None
        self._saved_parameters: list[torch.Tensor] | None = None
        self._saved_optimizer: dict[Any, dict[str, Any]] | None = None

    # --- checks: each returns a reason, or None when all is finite -----------------------------------------

    @staticmethod
    def check_loss(terms: dict[str, float], total: float) -> str | None:
        for name, value in {"total": total, **terms}.items():
            if not math.isfinite(value):
                return f"loss/{name} is {value}"
        return None

    def check_gradient(self, grad_norm: float) -> str | None:
        self.grad_norms.append(grad_norm)
        return None if math.isfinite(grad_norm) else f"gradient norm is {grad_norm}"

    @staticmethod
    @torch.no_grad()
    def total_norms(*groups: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each group's total 2-norm, left on the device (the loop reads them with the step's metrics), from one
        per-tensor norm call over every group: each call costs about the same per tensor whatever its size, which
        is most of the cost for a small model's many small tensors."""
        each = torch._foreach_norm([t for group in groups for t in group])
        totals, start = [], 0
        for group in groups:
            part = each[start:start + len(group)]
            totals.append(torch.linalg.vector_norm(torch.stack(part)) if part else torch.zeros(()))
            start += len(group)
        return totals

    @staticmethod
    def check_parameter_norm(norm: float, model: torch.nn.Module) -> str | None:
        """A reason when the parameters (whose total norm is `norm`, already on the host) are not all finite."""
        if math.isfinite(norm):
            return None
        for name, p in model.named_parameters():  # only on an incident: find the culprit by name
            if not torch.isfinite(p).all():
                return f"parameter {name} holds non-finite values"
        return "parameter norm overflows (values too large for float32)"

    # --- bookkeeping ---------------------------------------------------------------------------------------

    def record_finite(self, step: int, metrics: dict[str, float]) -> None:
        self.last_finite.update({k: v for k, v in metrics.items() if math.isfinite(v)})
        self.last_finite_step = step

    def remember_parameters(self, model: torch.nn.Module) -> None:
        """Under `skip`, a copy of the parameters before the update, so a bad update can be undone."""
        self.remember_update(model, None)

    def remember_update(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        """Under `skip`, copies (on the device, no read) of the parameters and the optimiser's state before the
        update: the loop steps before it has read whether the step was finite, and `skip` must undo it exactly.
        `stop` needs nothing (the run ends) and `rollback` has its checkpoint, so they copy nothing."""
        if self.policy != "skip":
            return
        params = [p.detach() for p in model.parameters()]
        if self._saved_parameters is None:
            self._saved_parameters = [p.clone() for p in params]
        else:
            torch._foreach_copy_(self._saved_parameters, params)
        if optimizer is not None:
            self._saved_optimizer = {p: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in st.items()}
                                     for p, st in optimizer.state.items()}

    def undo_update(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Put the parameters back as `remember_update` saw them, and with `optimizer`, its state too."""
        if self._saved_parameters is not None:
            with torch.no_grad():
                torch._foreach_copy_([p for p in model.parameters()], self._saved_parameters)
        if optimizer is not None and self._saved_optimizer is not None:
            for p in list(optimizer.state):
                if p not in self._saved_optimizer:
                    del optimizer.state[p]  # created by the undone step
            for p, saved in self._saved_optimizer.items():
                optimizer.state[p] = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in saved.items()}

    def incident(self, step: int, stage: Stage, reason: str,
                 diagnostics: dict[str, Any]) -> Incident:
        """Record an incident; its action is the policy's, or `stop` when it is the `max_incidents`-th (so
        max_incidents − 1 are handled by the policy, as the field's help says)."""
        action: Action = self.policy if len(self.incidents) + 1 < self.max_incidents else "stop"
        found = Incident(step, stage, reason, action, dict(self.last_finite), self.last_finite_step,
                         {**diagnostics, "grad_norm_history": list(self.grad_norms)})
        self.incidents.append(found)
        return found

    def report(self) -> dict[str, Any] | None:
        """What the run stores as its divergence report; None when nothing happened."""
        if not self.incidents:
            return None
        first = self.incidents[0]
        return {
            "policy": self.policy,
            "first_step": first.step,
            "reason": first.reason,
            "incidents": [asdict(i) for i in self.incidents],
        }


@torch.no_grad()
def divergence_diagnostics(features: torch.Tensor | None, embedding: torch.Tensor | None,
                           loss_cfg: LossConfig, lr: float, labels: torch.Tensor | None = None) -> dict[str, Any]:
    """The numbers that explain a blow-up: the largest InfoNCE logit, feature and embedding norms, the lr, and
    (given the labels) which logits overflowed and how that made the NaN (`explain_overflow`)."""
    found: dict[str, Any] = {"lr": lr}
    if features is not None:
        f = features.detach().float()
        norms = f.norm(dim=1)
        found["feature_norm_max"] = float(norms.max())
        found["feature_norm_mean"] = float(norms.mean())
        if loss_cfg.normalize:
            f = F.normalize(f, dim=1)
        found["largest_logit"] = float((f @ f.T / loss_cfg.temperature).abs().max())
        if labels is not None:
            found["overflow"] = explain_overflow(features, labels, loss_cfg)
    if embedding is not None:
        found["embedding_norm_max"] = float(embedding.detach().float().norm(dim=1).max())
    return found


NanCause = Literal["inf·0", "inf/inf", "inf−inf"]
LOGIT_KINDS = ("self", "positive", "negative")


class _Trace:
    """Follows the loss's tensors in the order it computes them and keeps the first operation that made a NaN
    from inputs that had none: a NaN, once made, only spreads, so that first one is the cause."""

    def __init__(self) -> None:
        self.cause: NanCause | None = None
        self.where = ""

    def step(self, out: torch.Tensor, inputs: tuple[torch.Tensor, ...], cause: NanCause, where: str) -> torch.Tensor:
        if self.cause is None and bool(out.isnan().any()) and not any(bool(x.isnan().any()) for x in inputs):
            self.cause, self.where = cause, where
        return out


@torch.no_grad()
def explain_overflow(features: torch.Tensor, labels: torch.Tensor, loss_cfg: LossConfig) -> dict[str, Any]:
    """Which InfoNCE logits make exp overflow and how the loss turned that into NaN, measured on these features.

    Recomputes `engine.losses.info_nce` step by step in its precision (float32 unless given float64): the largest
    logit and the count of overflowing exps (exp(x) == inf) of each kind (self = the diagonal, positive = same
    label, negative = other label), which kinds the denominator sums and which its mask multiplies by 0, and
    `nan_cause`: the operation that first made a NaN ("inf·0", "inf/inf", "inf−inf"), or None when none did
    (or `log_sum_exp` is set: the stable form never exponentiates a raw logit). The exp form takes the log of the
    denominator and subtracts it from the logit, so no probability is ever divided as inf / inf.
    """
    f = features.detach()
    f = f if f.dtype in (torch.float32, torch.float64) else f.float()  # as losses._at_least_float32
    if loss_cfg.normalize:
        f = F.normalize(f, dim=1)
    trace = _Trace()
    logits = trace.step(f @ f.T / loss_cfg.temperature, (f,), "inf−inf", "f·fᵀ adds +inf and −inf products")
    n = len(labels)
    is_self = torch.eye(n, dtype=torch.bool, device=f.device)
    same = labels[:, None] == labels[None, :]
    masks = {"self": is_self, "positive": same & ~is_self, "negative": ~same}
    positives = masks["positive"]
    in_denominator = ~is_self if loss_cfg.denominator == "all" else ~same
    summed = ("positive", "negative") if loss_cfg.denominator == "all" else ("negative",)

    exp = logits.exp()
    overflowed = exp.isinf()
    found: dict[str, Any] = {
        "log_sum_exp": loss_cfg.log_sum_exp,
        "exp_limit": math.log(torch.finfo(f.dtype).max),  # exp overflows past this: 88.72 in float32
        "features_finite": bool(features.isfinite().all()),
        "largest": {k: float(logits[m].max()) if m.any() else None for k, m in masks.items()},
        "overflowed": {k: int((overflowed & m).sum()) for k, m in masks.items()},
        "in_denominator": list(summed),
        "masked_by_zero": [k for k in LOGIT_KINDS if k not in summed],
        "nan_anchors": 0,
        "inf_denominators": 0,
    }
    if not loss_cfg.log_sum_exp and found["features_finite"]:
        # the loss's own steps, in its order (engine.losses.info_nce with log_sum_exp=False)
        terms = trace.step(exp * in_denominator, (exp,), "inf·0", "the denominator's mask")
        denominator = terms.sum(dim=1, keepdim=True)
        found["nan_anchors"] = int(denominator.isnan().sum())
        # a sum of finite exps can still pass float32's largest value: the loss is then inf, not NaN
        found["inf_denominators"] = int(denominator.isinf().sum())
        log_denominator = torch.log(denominator)
        difference = trace.step(logits - log_denominator, (logits, log_denominator), "inf−inf",
                                "a logit of inf minus a log-denominator of inf")
        log_prob = torch.where(positives, difference, torch.zeros_like(logits))
        positive_count = positives.sum(1)
        counted = (positive_count > 0) & in_denominator.any(1)
        if counted.any():
            sums = trace.step(log_prob[counted].sum(1), (log_prob[counted],), "inf−inf",
                              "an anchor's log-probabilities add +inf and −inf")
            per_anchor = trace.step(sums / positive_count[counted], (sums,), "inf/inf", "an anchor's mean")
            trace.step(per_anchor.mean(), (per_anchor,), "inf−inf", "the mean over anchors adds +inf and −inf")
    found["nan_cause"] = trace.cause
    found["nan_where"] = trace.where or None
    kwargs: dict[str, Any] = dict(temperature=loss_cfg.temperature, denominator=loss_cfg.denominator, normalize=loss_cfg.normalize,
                  base_temperature=loss_cfg.base_temperature, no_positive=loss_cfg.no_positive)
    found["loss"] = float(info_nce(features.detach(), labels, log_sum_exp=loss_cfg.log_sum_exp, **kwargs))
    found["stable_loss"] = float(info_nce(features.detach(), labels, log_sum_exp=True, **kwargs))
    found["explanation"] = _explain(found)
    return found


def _explain(found: dict[str, Any]) -> str:
    """One sentence, with the numbers, from `explain_overflow`'s measurements."""
    stable = f"The stable log-sum-exp loss on the same features is {found['stable_loss']:.4g}."
    largest = {k: v for k, v in found["largest"].items() if v is not None}
    top = max(largest, key=lambda k: largest[k]) if largest else None
    top_text = (f"the largest logit, a {top} one, is {largest[top]:.1f}; exp overflows past {found['exp_limit']:.2f}"
                if top else "there are no logits")
    if not found["features_finite"]:
        return f"The features were already non-finite before InfoNCE, so the NaN did not arise in the loss. {stable}"
    if found["log_sum_exp"]:
        return (f"The loss uses log-sum-exp, which never exponentiates a raw logit, so nothing overflows "
                f"({top_text}); its value on these features is {found['stable_loss']:.4g}.")
    hit = [k for k in LOGIT_KINDS if found["overflowed"][k]]
    inf_sums = found["inf_denominators"]
    if not hit and inf_sums:
        return (f"No single exp overflows ({top_text}), but the denominator's sum of exps passes float32's largest "
                f"value on {_count(inf_sums, 'anchor')}, so its log is inf and the loss is "
                f"{found['loss']:.4g}, not NaN. {stable}")
    if not hit:
        return f"No InfoNCE logit makes exp overflow ({top_text}); the loss is {found['loss']:.4g}. {stable}"
    parts = [f"{_count(found['overflowed'][k], k + ' logit')} (largest {found['largest'][k]:.1f})" for k in hit]
    overflow = "exp overflowed on " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])
    masked = [k for k in hit if k in found["masked_by_zero"]]
    cause = found["nan_cause"]
    if cause == "inf·0":
        return (f"{overflow}; the mask multiplies the {' and '.join(masked)} terms by 0, and inf·0 is NaN, which "
                f"the sum carries into the denominator of {_count(found['nan_anchors'], 'anchor')} and so into the "
                f"loss. {stable}")
    if cause is not None:
        return f"{overflow}; then {found['nan_where']}, and {cause} is NaN. {stable}"
    return (f"{overflow}; the denominator sums them, so its log is inf and the loss is {found['loss']:.4g}, not "
            f"NaN. {stable}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
