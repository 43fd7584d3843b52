"""`NotebookLogger`: Lightning's `Logger` over the tracking client, so `Trainer(logger=NotebookLogger())` records
a run of the notebook (or, launched by the notebook, logs into the launched run). Lightning is imported here
only: `import lab_notes` never pulls it (nor torch) in.

    trainer = lightning.Trainer(logger=NotebookLogger(name="my idea"), max_epochs=3)
"""

from __future__ import annotations

import json
import math
import sys
from argparse import Namespace
from typing import Any, Mapping, cast

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict, _sanitize_callable_params
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from lab_notes.client import start_run
from lab_notes.client_run import TrackedRun, outcome


class NotebookLogger(Logger):
    """Each Lightning fit as a run of the notebook at `url` (default $LAB_NOTEBOOK_URL, else ./notebook.db).
    The run starts at the first thing logged, with the hyperparameters as its config when they come first (as
    `Trainer.fit` sends them); it ends as failed, or stopped on Ctrl-C, when the fit does, and otherwise as
    completed when the script exits (a `trainer.test` after the fit logs into the same run) or at `finish()`."""

    def __init__(self, name: str | None = None, *, url: str | None = None, save_dir: str | None = None,
                 owner: str | None = None) -> None:
        super().__init__()
        self._name = name
        self._url = url
        self._save_dir = save_dir
        self._owner = owner
        self._run: TrackedRun | None = None

    @property
    def name(self) -> str:
        return self._run.name if self._run is not None else (self._name or "lightning")

    @property
    def version(self) -> str:
        """The run's id (once it has started)."""
        return str(self._run.id) if self._run is not None else ""

    @property
    def save_dir(self) -> str | None:
        """Where Lightning puts checkpoints (under name/version); None: the trainer's default_root_dir."""
        return self._save_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> TrackedRun:
        """The tracking client's run. Before anything is logged, a stand-in that starts it at first use: Lightning
        touches `experiment` before it sends the hyperparameters, which should become the new run's config."""
        return self._run if self._run is not None else cast(TrackedRun, _StartsAtFirstUse(self))

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        config = plain_config(params)
        if self._run is None:
            self._started(config)
        elif config:
            self._run.log_hyperparameters(config)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._started({}).log(dict(metrics), step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of a fit: "success" writes what waits; "failed" ends the run now (stopped when the
        fit was interrupted with Ctrl-C), with the traceback's last lines."""
        if self._run is None:
            return
        if status == "failed":
            kind, error, trace = sys.exc_info()  # Lightning calls this inside its `except` around the fit
            ended, reason = outcome(kind, error, trace) if kind is not None else ("failed", "the fit failed")
            self._run.finish(ended, reason)
        elif not self._run.finished:
            self._run.flush()

    def finish(self) -> None:
        """End the run as completed now (otherwise it ends when the script exits)."""
        if self._run is not None:
            self._run.finish()

    def _started(self, config: dict[str, Any]) -> TrackedRun:
        if self._run is None:
            self._run = start_run(name=self._name, config=config, url=self._url, owner=self._owner)
        return self._run


class _StartsAtFirstUse:
    """The logger's run before it has started: any attribute starts it (with an empty config) and is its."""

    def __init__(self, logger: NotebookLogger) -> None:
        self._logger = logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger._started({}), name)


def plain_config(params: dict[str, Any] | Namespace) -> dict[str, Any]:
    """Lightning's hyperparameters as a flat dict of JSON values ("optimizer/lr"), anything else as its text."""
    flat = _flatten_dict(_sanitize_callable_params(_convert_params(params)))
    return {str(key): value if _is_plain(value) else str(value) for key, value in flat.items()}


def _is_plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False
