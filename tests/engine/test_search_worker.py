"""A search run by real worker processes: the worker killed with SIGKILL in the middle of a sweep, then a new one
started; no trial is lost and none is run twice. Every wait polls the notebook with a deadline."""

from __future__ import annotations

import os
import signal
from optuna.trial import TrialState

from engine.search import submit_search
from engine.search_space import search_settings
from engine.search_storage import replayed_trials
from tests.engine.test_search import NEGATIVES, small
from tests.helpers import wait_for


def test_kill_9_of_the_worker_mid_search_then_restart_loses_no_trial_and_runs_none_twice(notebook, start_worker):
    budget = 6
    cfg = small(NEGATIVES, "schedule.episodes=150")
    settings = search_settings(cfg, ["optim.lr=1e-4:1e-2:log", "loss.temperature=0.3:1"], "eval/prototype:max",
                               trials=budget, parallel=2, pruner="none", seed=1)
    sweep_id = submit_search(notebook, cfg, settings, name="killed", preset=NEGATIVES)

    def ended_trials() -> int:
        return sum(t.state.is_finished() for t in replayed_trials(notebook.study_entries(sweep_id)))

    first = start_worker("--max-parallel", "2", "--stale-after", "4")
    # in the middle: some trials told, later ones asked, and runs running when the worker dies
    wait_for(lambda: ended_trials() >= 2 and notebook.list_runs(status="running"), 240, "two trials told and one running")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    start_worker("--max-parallel", "2", "--stale-after", "4")
    wait_for(lambda: notebook.get_search(sweep_id).settings.get("done"), 300, "the search to spend its budget")

    trials = replayed_trials(notebook.study_entries(sweep_id))
    runs = [notebook.get_run(i) for i in notebook.get_sweep(sweep_id).run_ids]
    numbers = notebook.trial_numbers(sweep_id)
    assert [t.number for t in trials] == list(range(budget))  # nothing asked twice, nothing beyond the budget
    assert sorted(numbers.values()) == list(range(budget)) and len(runs) == budget  # one run per trial
    assert all(t.state.is_finished() for t in trials)  # nothing lost: every trial was told how it ended
    for trial in trials:
        run = notebook.get_run(trial.user_attrs["run_id"])
        assert numbers[run.id] == trial.number
        assert run.attempt == 1, f"run {run.id} started {run.attempt} times"  # no run ran twice
        if run.status == "completed":
            assert trial.state == TrialState.COMPLETE
            assert notebook.metric_history(run.id, "loss/total")[0].tolist() == list(range(1, 151))  # each step once
        else:  # the runs the kill orphaned end failed ("its worker died"), and their trials FAIL
            assert run.status == "failed" and trial.state == TrialState.FAIL, (run.status, run.status_reason)
    assert any(r.status == "failed" and "worker" in (r.status_reason or "") for r in runs)
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 3
