"""What the Sweep page shows of a search, read from the notebook alone (its journal replayed, its runs): the
trials with their values, status and the step each was pruned at, the best value so far after each trial, and
Optuna's own parameter importances (or why there are none yet). Torch-free; the app reaches it through
`engine.sweeps.search_overview`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from engine.search import PRUNED_AT
from engine.search_storage import replayed_study
from lab_notes import Notebook

MIN_TRIALS_FOR_IMPORTANCE = 3


@dataclass(frozen=True)
class TrialRow:
    number: int
    run_id: int | None
    state: str  # Optuna's: RUNNING, COMPLETE, PRUNED, FAIL
    run_status: str  # the run's status in the notebook ("—" before it is queued)
    value: float | None
    params: dict[str, Any]
    pruned_at: int | None
    reason: str | None


@dataclass(frozen=True)
class SearchOverview:
    sweep_id: int
    objective: str
    direction: str  # maximize | minimize
    budget: int
    parallel: int
    sampler: str
    pruner: str
    trials: list[TrialRow] = field(default_factory=list)
    best_so_far: list[tuple[int, float]] = field(default_factory=list)  # (trial number, best value up to it)
    importances: dict[str, float] = field(default_factory=dict)
    importances_note: str = ""  # why there are none (too few trials), when empty
    done: bool = False

    @property
    def best(self) -> TrialRow | None:
        finished = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not finished:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(finished, key=lambda t: t.value or 0.0)  # None was left out above


def search_overview(notebook: Notebook, sweep_id: int) -> SearchOverview:
    """A search as the Sweep page shows it (NotFound when `sweep_id` is not a search)."""
    search = notebook.get_search(sweep_id)
    settings = search.settings
    study = replayed_study(notebook.study_entries(sweep_id))
    frozen = [] if study is None else study.get_trials(deepcopy=False)
    rows = []
    for trial in frozen:
        run_id = trial.user_attrs.get("run_id")
        run = notebook.get_run(run_id) if run_id is not None else None
        reason = run.status_reason if run is not None else trial.user_attrs.get("status")
        pruned_at = trial.user_attrs.get("pruned_at")
        if pruned_at is None and reason and reason.startswith(PRUNED_AT):  # asked to stop, not yet stopped
            pruned_at = int(reason[len(PRUNED_AT):].split()[0])
        # a pruned trial's value is its last periodic evaluation, not the objective: shown only for completed ones
        value = trial.value if trial.state.name == "COMPLETE" else None
        rows.append(TrialRow(trial.number, run_id, trial.state.name, run.status if run else "—",
                             value, dict(trial.params), pruned_at, reason))
    best_so_far, best = [], None
    for row in rows:
        if row.state == "COMPLETE" and row.value is not None and math.isfinite(row.value):
            better = best is None or (row.value > best if settings["direction"] == "maximize" else row.value < best)
            best = row.value if better else best
        if best is not None:
            best_so_far.append((row.number, best))
    importances, note = _importances(study, rows)
    return SearchOverview(sweep_id, settings["objective"], settings["direction"], settings["trials"],
                          settings["parallel"], settings["sampler"], settings["pruner"], rows, best_so_far,
                          importances, note, bool(settings.get("done")))


def _importances(study: Any, rows: list[TrialRow]) -> tuple[dict[str, float], str]:
    """Optuna's own importance evaluator (fANOVA) over the completed trials, or why there are none."""
    complete = sum(r.state == "COMPLETE" for r in rows)
    if study is None or complete < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, (f"Parameter importances need at least {MIN_TRIALS_FOR_IMPORTANCE} completed trials; this "
                    f"search has {complete}.")
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(study)), ""
    except (RuntimeError, ValueError) as error:  # e.g. every completed trial has the same value
        return {}, f"Optuna could not rate the parameters yet: {error}"
