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

Action = Literal["stop", "skip", "rollback"]


@dataclass
class Incident:
    step: int
    stage: Literal["loss", "gradient", "parameters"]
    reason: str
    action: Action
    last_finite: dict[str, float]
    last_finite_step: int | None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class DivergenceGuard:
    def __init__(self, cfg: GuardConfig) -> None:
        self.policy: Action = cfg.policy
        self.max_incidents = cfg.max_incidents
        self.incidents: list[Incident] = []
        self.grad_norms: deque[float] = deque(maxlen=20)
        self.last_finite: dict[str, float] = {}
        self.last_finite_step: int | None = None
        self._saved_parameters: list[torch.Tensor] | None = None

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
    def check_parameters(model: torch.nn.Module) -> str | None:
        params = [p for p in model.parameters()]
        if math.isfinite(float(torch.nn.utils.get_total_norm(params, foreach=True))):
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
        if self.policy != "skip":
            return
        params = [p.detach() for p in model.parameters()]
        if self._saved_parameters is None:
            self._saved_parameters = [p.clone() for p in params]
        else:
            torch._foreach_copy_(self._saved_parameters, params)

    def undo_update(self, model: torch.nn.Module) -> None:
        if self._saved_parameters is not None:
            with torch.no_grad():
                torch._foreach_copy_([p for p in model.parameters()], self._saved_parameters)

    def incident(self, step: int, stage: Literal["loss", "gradient", "parameters"], reason: str,
                 diagnostics: dict[str, Any]) -> Incident:
        """Record an incident; its action is the policy's, or `stop` once `max_incidents` is reached."""
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
                           loss_cfg: LossConfig, lr: float) -> dict[str, Any]:
    """The numbers that explain a blow-up: the largest InfoNCE logit, feature and embedding norms, the lr."""
    found: dict[str, Any] = {"lr": lr}
    if features is not None:
        f = features.detach().float()
        norms = f.norm(dim=1)
        found["feature_norm_max"] = float(norms.max())
        found["feature_norm_mean"] = float(norms.mean())
        if loss_cfg.normalize:
            f = F.normalize(f, dim=1)
        found["largest_logit"] = float((f @ f.T / loss_cfg.temperature).abs().max())
    if embedding is not None:
        found["embedding_norm_max"] = float(embedding.detach().float().norm(dim=1).max())
    return found
