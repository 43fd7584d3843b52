"""`NotebookSink`: the engine's Sink protocol, writing into the notebook (no torch here)."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from lab_notes.store import Notebook

STOP_POLL_SECONDS = 0.5


class NotebookSink:
    """Streams one run's metrics, images and events into the notebook; asks to stop when the run's stop flag is
    set (read at most every STOP_POLL_SECONDS, so a fast loop does not query the database every step)."""

    def __init__(self, notebook: Notebook, run_id: int) -> None:
        self.notebook = notebook
        self.run_id = run_id
        self._stop = False
        self._stop_checked = 0.0

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self.notebook.log_metrics(self.run_id, step, values)

    def log_image(self, key: str, step: int, png: bytes) -> None:
        self.notebook.log_image(self.run_id, key, step, png)

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "started":
            self.notebook.set_device(self.run_id, f"{payload['device']} ({payload['precision']})")
        elif kind == "checkpoint":
            self.notebook.add_checkpoint(self.run_id, payload["step"], payload["path"])
        elif kind == "divergence":
            report = self.notebook.get_run(self.run_id).divergence_report or {"incidents": []}
            report.setdefault("incidents", []).append(payload)
            self.notebook.set_divergence_report(self.run_id, report)
        elif kind == "status":
            self.notebook.flush()
            if payload.get("report"):
                self.notebook.set_divergence_report(self.run_id, payload["report"])
            self.notebook.set_status(self.run_id, payload["status"],
                                     reason=(payload.get("report") or {}).get("reason"))
            if payload["status"] == "diverged":
                run = self.notebook.get_run(self.run_id)
                title, body = divergence_note(run.id, run.name, payload["report"])
                self.notebook.add_note(dt.date.today(), title, body, run_ids=[run.id], tags=["divergence"])

    def should_stop(self) -> bool:
        if not self._stop and time.monotonic() - self._stop_checked >= STOP_POLL_SECONDS:
            self._stop_checked = time.monotonic()
            self._stop = self.notebook.stop_requested(self.run_id)
        return self._stop


def divergence_note(run_id: int, name: str, report: dict[str, Any]) -> tuple[str, str]:
    """The journal entry a diverged run writes: what went non-finite, when, the last finite values, why."""
    first = report["incidents"][-1] if report.get("incidents") else {}
    title = f"Run {run_id} ({name}) diverged at step {first.get('step', report.get('first_step'))}"
    last = first.get("last_finite", {})
    shown = {k: last[k] for k in sorted(last) if k.startswith(("loss/", "acc/")) or k in ("grad_norm", "lr")}
    lines = [
        f"Run {run_id} ({name}) diverged: **{report.get('reason')}** at step {first.get('step')} "
        f"({first.get('stage')} check); the guard's policy was `{report.get('policy')}`, action "
        f"`{first.get('action')}`.",
        "",
        f"Last finite values (step {first.get('last_finite_step')}):",
        "",
        *[f"- `{k}` = {v:.6g}" for k, v in shown.items()],
        "",
        "Diagnostics:",
        "",
        "```json",
        json.dumps({k: v for k, v in first.get("diagnostics", {}).items()}, indent=2, default=str),
        "```",
        "",
    ]
    return title, "\n".join(lines)
