"""Optuna chooses, the notebook runs. A search is a sweep whose runs a study asks for one step at a time: the
worker's loop calls `advance_searches`, which for each active search, in one transaction (`lab_notes.study_log`),

- tells the study how each ended trial went (completed: its objective; diverged, failed, stopped by a person:
  FAIL, so a diverged trial only teaches the sampler where not to go; stopped by the pruner: PRUNED);
- reports each running trial's intermediate values (the periodic held-out accuracy, or the loss, that its run
  already writes to the notebook) and asks the pruner; a hopeless run is asked to stop, "pruned at step S";
- asks new trials up to its parallelism and budget, and queues each as an ordinary run of the notebook (the
  search's owner, its sweep, the trial number on the run).

Asking a trial and queueing its run commit together, so a worker killed at any moment leaves neither a trial
without a run nor two runs of one trial; the next step, by any worker, goes on from there."""

from __future__ import annotations

import json
import math
import traceback
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from engine.config import RunConfig, validate_config, with_overrides
from engine.lint import lint
from engine.search_space import JUDGES, SearchSettings
from engine.search_storage import open_study
from lab_notes import FINAL_STATUSES, Notebook, Refused, Unreachable
from lab_notes.keys import SNAPSHOT_FEW_SHOT
from lab_notes.study_log import SearchStep, TrialRun
from lab_notes.sweeps import SweepRun

PRUNED_AT = "pruned at step "


@dataclass
class StepReport:
    """What one step of one search did (the worker says it; tests read it)."""

    sweep_id: int
    asked: list[int] = field(default_factory=list)  # trial numbers asked and queued
    told: dict[int, str] = field(default_factory=dict)  # trial number -> the state told
    pruned: dict[int, int] = field(default_factory=dict)  # run id -> the step it was pruned at
    done: bool = False


def submit_search(notebook: Notebook, base: RunConfig, settings: SearchSettings, *, name: str, preset: str | None,
                  owner: str | None = None) -> int:
    """Record the search (checked already: `engine.search_space.search_settings`) and ask its first trials at
    once, so they are queued before any worker looks; returns its sweep id."""
    fields = {r.path: r.as_text() for r in settings.range_list()}
    sweep_id = notebook.create_search(name=name, preset=preset, fields=fields, owner=owner,
                                  settings={**settings.as_dict(), "base": base.model_dump(mode="json")})
    advance_search(notebook, sweep_id)
    return sweep_id


def advance_searches(notebook: Notebook) -> list[StepReport]:
    """One step of every active search (the worker's hook). One search's error is printed and that search is
    stepped again later; the others go on. A database outage is the caller's to wait out."""
    reports = []
    for sweep_id in notebook.active_searches():
        try:
            reports.append(advance_search(notebook, sweep_id))
        except Unreachable:
            raise
        except Exception:  # noqa: BLE001 - a bug met in one search must not stop the others, nor the worker
            traceback.print_exc()
            print(f"search {sweep_id}: step failed (above); trying again at the next step", flush=True)
    return reports


def advance_search(notebook: Notebook, sweep_id: int) -> StepReport:
    report = StepReport(sweep_id)
    with notebook.search_step(sweep_id) as step:
        settings = SearchSettings.from_dict(step.search.settings)
        study = open_study(step, settings)
        runs = step.trial_runs()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            run = runs.get(trial.number)
            if run is None:  # not reachable through this module (ask and queue commit together); kept honest
                _queue(step, study, trial, settings, runs)
            elif run.status in (*FINAL_STATUSES, "deleted"):
                report.told[trial.number] = _tell(notebook, study, trial, run, settings)
            elif run.status == "running" and not (run.status_reason or "").startswith(PRUNED_AT):
                pruned_at = _report_and_judge(notebook, study, trial, run, settings)
                if pruned_at is not None:
                    report.pruned[run.run_id] = pruned_at
        trials = study.get_trials(deepcopy=False)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        while running < settings.parallel and len(trials) < settings.trials:
            number = study.ask({r.path: r.distribution() for r in settings.range_list()}).number
            _queue(step, study, study.get_trials(deepcopy=False)[number], settings, runs)
            report.asked.append(number)
            running += 1
            trials = study.get_trials(deepcopy=False)
        if len(trials) >= settings.trials and running == 0:
            step.mark_done()
            report.done = True
    for run_id, at in report.pruned.items():  # after the commit: the stop is the run's, by compare-and-set
        try:
            notebook.request_stop(run_id, reason=f"{PRUNED_AT}{at}")
        except Refused:
            pass  # it ended meanwhile: the next step tells how
    return report


def _queue(step: SearchStep, study: optuna.Study, trial: FrozenTrial, settings: SearchSettings,
           runs: dict[int, TrialRun]) -> None:
    """Queue the run of `trial` (in the step's transaction); a value that does not make a valid config fails
    the trial instead."""
    base = validate_config(step.search.settings["base"])
    label = ", ".join(f"{p.rsplit('.', 1)[-1]}={_short(v)}" for p, v in trial.params.items())
    try:
        cfg = with_overrides(base, [f"{p}={json.dumps(v)}" for p, v in trial.params.items()])
    except Exception as error:  # noqa: BLE001 - a bad point is that trial's failure, never the search's
        study._storage.set_trial_user_attr(trial._trial_id, "status", f"invalid config: {error}")
        study.tell(trial.number, state=TrialState.FAIL)
        return
    run = SweepRun(f"{step.search.name} #{trial.number} [{label}]", cfg.model_dump(mode="json"),
                   [{"path": w.path, "message": w.message} for w in lint(cfg)],
                   pinned_host=cfg.runtime.host or None, pinned_gpu=cfg.runtime.gpu_kind or None)
    run_id = step.queue_trial_run(trial.number, run)
    study._storage.set_trial_user_attr(trial._trial_id, "run_id", run_id)
    runs[trial.number] = TrialRun(trial.number, run_id, "queued", None)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _tell(notebook: Notebook, study: optuna.Study, trial: FrozenTrial, run: TrialRun, settings: SearchSettings) -> str:
    """Tell the study how `run` ended (after the intermediate values it wrote since the last step, which the
    pruner compares later trials with); returns the state told."""
    _report_and_judge(notebook, study, trial, run, settings, judge=False)
    study._storage.set_trial_user_attr(trial._trial_id, "status", run.status)
    reason = run.status_reason or ""
    if run.status == "stopped" and reason.startswith(PRUNED_AT):
        study._storage.set_trial_user_attr(trial._trial_id, "pruned_at", int(reason[len(PRUNED_AT):].split()[0]))
        study.tell(trial.number, state=TrialState.PRUNED)
        return "PRUNED"
    value = objective_value(notebook, run.run_id, settings.objective) if run.status == "completed" else None
    if value is None:  # diverged, failed, stopped by a person, deleted, or no finite objective: a failed trial
        study.tell(trial.number, state=TrialState.FAIL)
        return "FAIL"
    study.tell(trial.number, value)
    return "COMPLETE"


def objective_value(notebook: Notebook, run_id: int, objective: str) -> float | None:
    """The objective of a finished run: a judge's held-out accuracy in its end-of-run report (`eval/<judge>`,
    else that judge's last periodic one), or a metric's last value; None when it has none that is finite."""
    value: float | None = None
    judge = objective.removeprefix("eval/")
    if judge in JUDGES:
        report = notebook.latest_snapshots([run_id], SNAPSHOT_FEW_SHOT).get(run_id) or {}
        value = (report.get("accuracy") or {}).get(judge, {}).get("mean")
        objective = f"eval/acc/{judge}" if value is None else objective
    if value is None:
        value = notebook.latest_metrics(run_id).get(objective, (None, None))[1]
    return float(value) if value is not None and math.isfinite(value) else None


def intermediate_key(objective: str) -> str:
    """The series a running trial is judged by: the objective itself, or for a judge of the end-of-run report,
    that judge's periodic held-out accuracy."""
    judge = objective.removeprefix("eval/")
    return f"eval/acc/{judge}" if judge in JUDGES else objective


def _report_and_judge(notebook: Notebook, study: optuna.Study, trial: FrozenTrial, run: TrialRun,
                      settings: SearchSettings, judge: bool = True) -> int | None:
    """Report the run's new intermediate values to its trial; with `judge`, the step to prune it at, or None."""
    steps, values = notebook.metric_history(run.run_id, intermediate_key(settings.objective))
    seen = max(trial.intermediate_values, default=-1)
    live = optuna.trial.Trial(study, trial._trial_id)
    fresh = [(int(s), float(v)) for s, v in zip(steps, values) if s > seen and math.isfinite(v)]
    for step_number, value in fresh:
        live.report(value, step_number)
    if judge and fresh and live.should_prune():
        return fresh[-1][0]
    return None


def step_in_words(report: StepReport) -> str:
    parts = [f"asked {report.asked}" if report.asked else "", f"told {report.told}" if report.told else "",
             f"pruned runs {report.pruned}" if report.pruned else "", "done" if report.done else ""]
    return f"search {report.sweep_id}: " + "; ".join(p for p in parts if p)

