"""Where a training run's output goes. The loop knows only the `Sink` protocol; the notebook implements one
(`lab_notes.NotebookSink`), and here are the JSON-lines file sink for the CLI and tests, a terminal progress
bar that wraps any sink, and the sink that drops everything (ranks other than 0)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm


class Sink(Protocol):
    def log_metrics(self, step: int, values: dict[str, float]) -> None: ...

    def log_image(self, key: str, step: int, png: bytes) -> None: ...

    def log_event(self, kind: str, payload: dict[str, Any]) -> None: ...

    def stop_requested(self) -> bool: ...


class NullSink:
    """Drops everything and never asks to stop: what ranks other than 0 of a several-process run write to (rank 0
    alone writes, and its stop request reaches them through the process group)."""

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def log_image(self, key: str, step: int, png: bytes) -> None:
        pass

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        pass

    def stop_requested(self) -> bool:
        return False


class JsonlSink:
    """Writes DIR/metrics.jsonl, DIR/events.jsonl, DIR/images/KEY/step_N.png and, on the final `status` event,
    DIR/status.json. Each line is flushed as written, so a crash loses at most the line being written.
    Creating the file DIR/STOP asks the run to stop at its next step (with a checkpoint).

    Non-finite values are written as JSON's common extension (NaN, Infinity, -Infinity), which Python reads back.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._metrics = open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._events = open(self.out_dir / "events.jsonl", "a", encoding="utf-8")

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self._metrics.write(json.dumps({"step": step, "wall_time": time.time(), **values}) + "\n")
        self._metrics.flush()

    def log_image(self, key: str, step: int, png: bytes) -> None:
        folder = self.out_dir / "images" / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"step_{step:08d}.png").write_bytes(png)

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        self._events.write(json.dumps({"kind": kind, "wall_time": time.time(), **payload}, default=str) + "\n")
        self._events.flush()
        if kind == "status":
            (self.out_dir / "status.json").write_text(json.dumps(payload, indent=2, default=str))

    def stop_requested(self) -> bool:
        return (self.out_dir / "STOP").exists()

    def close(self) -> None:
        self._metrics.close()
        self._events.close()


def read_metrics(out_dir: str | Path) -> list[dict[str, float]]:
    """The rows of DIR/metrics.jsonl, in order."""
    with open(Path(out_dir) / "metrics.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


class ProgressSink:
    """Passes everything to `inner` and shows a progress bar with the latest loss (only on a terminal)."""

    def __init__(self, inner: Sink, total: int) -> None:
        self.inner = inner
        self.bar = tqdm(total=total, unit="episode", dynamic_ncols=True, disable=None)

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        self.inner.log_metrics(step, values)
        if "loss/total" in values:
            self.bar.set_postfix(loss=f"{values['loss/total']:.4g}", refresh=False)
            self.bar.update(step - self.bar.n)

    def log_image(self, key: str, step: int, png: bytes) -> None:
        self.inner.log_image(key, step, png)

    def log_event(self, kind: str, payload: dict[str, Any]) -> None:
        self.inner.log_event(kind, payload)
        if kind == "divergence":
            self.bar.write(f"divergence at step {payload.get('step')}: {payload.get('reason')} "
                           f"-> {payload.get('action')}")

    def stop_requested(self) -> bool:
        return self.inner.stop_requested()

    def close(self) -> None:
        self.bar.close()
