"""Searches: bad input refused naming the field with nothing queued; the study kept in the notebook (SQLite and
PostgreSQL); Optuna choosing and the notebook running the trials, diverged ones told as failures; pruning by
the step a run has reached."""

from __future__ import annotations

import math

import pytest
from optuna.trial import TrialState

from engine.config import ConfigError
from engine.presets import PRESETS
from engine.run_process import run_one
from engine.search import PRUNED_AT, advance_search, advance_searches, submit_search
from engine.search_space import MAX_TRIALS, search_settings
from engine.search_storage import replayed_trials
from lab_notes import Notebook
from tests.helpers import fresh_postgres_database, missing_service, tiny

NEGATIVES = "2022-12-14-negatives-infonce-diverges"


def small(name: str = NEGATIVES, *extra: str):
    return tiny(PRESETS[name], "schedule.episodes=60", "schedule.eval_every=20", "schedule.eval_episodes=4",
                "schedule.final_eval_episodes=20", "schedule.image_every=1000", "schedule.checkpoint_every=1000",
                *extra)


@pytest.mark.parametrize("ranges, objective, budget, field", [
    (["optim.lr=1e-1:1e-5"], "eval/prototype:max", 4, "optim.lr"),           # empty range (low above high)
    (["optim.lr="], "eval/prototype:max", 4, "optim.lr"),                    # no range at all
    (["optim.lr=0:1e-1:log"], "eval/prototype:max", 4, "optim.lr"),          # log bound <= 0
    (["loss.temperature=-1:1:log"], "eval/prototype:max", 4, "loss.temperature"),
    (["optim.lr=1e-5:1e-1:log"], "eval/accuracy:max", 4, "objective"),       # unknown objective key
    (["optim.lr=1e-5:1e-1:log"], "eval/prototype:max", 0, "trials"),         # budget 0
    (["optim.lr=1e-5:1e-1:log"], "eval/prototype:max", MAX_TRIALS + 1, "trials"),  # above the cap
    (["runtime.device=cpu,cuda"], "eval/prototype:max", 4, "runtime.device"),  # not a training field
    (["optim.nope=1:2"], "eval/prototype:max", 4, "optim.nope"),             # unknown field
    (["model.encoder.depth=1.5:3"], "eval/prototype:max", 4, "model.encoder.depth"),  # int field, fractional bound
])
def test_bad_input_names_the_field_and_queues_nothing(notebook, ranges, objective, budget, field):
    with pytest.raises(ConfigError) as caught:
        search_settings(small(), ranges, objective, trials=budget)
    assert any(p.path == field for p in caught.value.problems), caught.value
    assert notebook.list_runs() == [] and notebook.list_sweeps() == []


def test_ranges_integers_and_choices_become_optuna_distributions():
    settings = search_settings(small(), ["optim.lr=1e-5:1e-1:log", "loss.temperature=0.05:1",
                                         "model.encoder.depth=1:3", "loss.denominator=all,negatives"],
                               "eval/prototype", trials=8, parallel=2)
    kinds = {r.path: type(r.distribution()).__name__ for r in settings.range_list()}
    assert kinds == {"optim.lr": "FloatDistribution", "loss.temperature": "FloatDistribution",
                     "model.encoder.depth": "IntDistribution", "loss.denominator": "CategoricalDistribution"}
    assert settings.direction == "maximize" and settings.range_list()[0].log
    assert search_settings(small(), ["optim.lr=1e-5:1e-1"], "loss/total", trials=2).direction == "minimize"


def drive(notebook: Notebook, runs_dir, limit: int = 50) -> None:
    """What the worker does, in this process: step the searches, run the next queued trial, until all are done."""
    for _ in range(limit):
        advance_searches(notebook)
        attempt = notebook.claim_next_run("test-worker")
        if attempt is None:
            if not notebook.active_searches():
                return
            continue
        (runs_dir / str(attempt.run_id)).mkdir(parents=True, exist_ok=True)  # as the worker's spawn does
        run_one(notebook.url, attempt, runs_dir)
    raise AssertionError("the search did not finish")


def test_a_search_over_lr_and_tau_on_the_negatives_infonce_finds_a_run_that_does_not_diverge(notebook, tmp_path):
    budget = 6
    settings = search_settings(small(), ["optim.lr=1e-5:1e-1:log", "loss.temperature=0.05:1"],
                               "eval/prototype:max", trials=budget, parallel=1, pruner="none", seed=3)
    sweep_id = submit_search(notebook, small(), settings, name="lr and tau", preset=NEGATIVES)
    drive(notebook, tmp_path / "runs")
    runs = [notebook.get_run(i) for i in notebook.get_sweep(sweep_id).run_ids]
    trials = replayed_trials(notebook.study_entries(sweep_id))
    assert len(runs) == len(trials) == budget  # within its budget, one run per trial
    assert sorted(notebook.trial_numbers(sweep_id).values()) == list(range(budget))
    for trial in trials:
        run = notebook.get_run(trial.user_attrs["run_id"])
        assert trial.params == {"optim.lr": run.config["optim"]["lr"], "loss.temperature": run.config["loss"]["temperature"]}
        # a diverged trial is a failed trial to the sampler, never a crash of the search
        assert trial.state == (TrialState.COMPLETE if run.status == "completed" else TrialState.FAIL), run.status
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    assert finished, [notebook.get_run(t.user_attrs["run_id"]).status for t in trials]
    best = max(finished, key=lambda t: t.value)
    run = notebook.get_run(best.user_attrs["run_id"])
    assert run.status == "completed" and run.divergence_report is None
    assert math.isfinite(best.value) and best.value > 1 / 3  # better than chance on 3-way episodes
    assert notebook.get_search(sweep_id).settings["done"]


def test_a_diverging_trial_is_told_failed_and_the_search_goes_on(notebook, tmp_path):
    settings = search_settings(small(), ["optim.lr=0.5:1", "loss.temperature=0.05:0.06"], "eval/prototype:max",
                               trials=2, parallel=1, pruner="none")
    sweep_id = submit_search(notebook, small(), settings, name="hopeless", preset=NEGATIVES)
    drive(notebook, tmp_path / "runs")
    trials = replayed_trials(notebook.study_entries(sweep_id))
    statuses = [notebook.get_run(t.user_attrs["run_id"]).status for t in trials]
    assert statuses == ["diverged", "diverged"] and [t.state for t in trials] == [TrialState.FAIL] * 2
    assert [t.user_attrs["status"] for t in trials] == ["diverged", "diverged"]


def test_a_hopeless_running_trial_is_pruned_and_ends_stopped_saying_so(notebook):
    """The pruner judges a running trial by what its run has written: a run far below the median at the same
    step is asked to stop with the reason, and once it has stopped the trial is told PRUNED."""
    settings = search_settings(small(), ["optim.lr=1e-5:1e-1:log"], "eval/prototype:max", trials=4, parallel=4,
                               pruner="median")
    sweep_id = submit_search(notebook, small(), settings, name="pruned", preset=NEGATIVES)
    runs = {notebook.trial_numbers(sweep_id)[r]: r for r in notebook.get_sweep(sweep_id).run_ids}
    assert sorted(runs) == [0, 1, 2, 3]
    attempts = {}
    for trial in range(4):
        attempts[trial] = notebook.claim_next_run("test-worker")
    # trial 0 has ended; trials 1..3 are at step 20, trial 3 far below it, the others above
    for trial, accuracy in ((0, 0.5), (1, 0.8), (2, 0.7), (3, 0.1)):
        notebook.log_metrics(runs[trial], 20, {"eval/acc/prototype": accuracy}, attempt=attempts[trial])
    notebook.flush()
    notebook.finish_attempt(attempts[0], "completed")
    report = advance_search(notebook, sweep_id)
    assert report.told == {0: "COMPLETE"} and report.pruned == {runs[3]: 20}
    assert notebook.get_run(runs[3]).stop_requested and notebook.get_run(runs[3]).status_reason == f"{PRUNED_AT}20"
    assert not notebook.get_run(runs[1]).stop_requested
    notebook.finish_attempt(attempts[3], "stopped")  # the run obeys at its next step; the reason stays the pruner's
    assert notebook.get_run(runs[3]).status_reason == f"{PRUNED_AT}20"
    report = advance_search(notebook, sweep_id)
    assert report.told == {3: "PRUNED"} and report.asked == []  # the budget of 4 is spent
    pruned = replayed_trials(notebook.study_entries(sweep_id))[3]
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["pruned_at"] == 20


def _asks_exactly_once_on(notebook: Notebook) -> None:
    settings = search_settings(small(), ["optim.lr=1e-5:1e-1:log"], "loss/total:min", trials=3, parallel=2)
    sweep_id = submit_search(notebook, small(), settings, name="store", preset=NEGATIVES)
    for _ in range(3):  # more steps ask nothing more while two trials run
        assert advance_search(notebook, sweep_id).asked == []
    assert len(notebook.get_sweep(sweep_id).run_ids) == 2
    # a step that fails half way leaves nothing behind: neither the trial it asked nor its run
    first = notebook.claim_next_run("w")
    notebook.finish_attempt(first, "failed", reason="boom")
    entries = len(notebook.study_entries(sweep_id))
    with pytest.raises(RuntimeError):
        with notebook.search_step(sweep_id) as step:
            step.append_logs([{"op_code": 99, "worker_id": "x"}])
            raise RuntimeError("killed mid-step")
    assert len(notebook.study_entries(sweep_id)) == entries
    report = advance_search(notebook, sweep_id)
    assert report.told == {0: "FAIL"} and report.asked == [2]
    # reopened from the database alone (a restarted worker or app), the study is the same
    with Notebook(notebook.url) as again:
        trials = replayed_trials(again.study_entries(sweep_id))
        assert [t.number for t in trials] == [0, 1, 2]
        assert sorted(again.trial_numbers(sweep_id).values()) == [0, 1, 2]


def test_the_study_lives_in_the_notebook_on_sqlite(notebook):
    _asks_exactly_once_on(notebook)


def test_the_study_lives_in_the_notebook_on_postgresql():
    import os

    if not os.environ.get("LAB_NOTEBOOK_TEST_PG_URL"):
        missing_service("PostgreSQL: set LAB_NOTEBOOK_TEST_PG_URL")
    url, drop = fresh_postgres_database()
    try:
        with Notebook(url) as notebook:
            _asks_exactly_once_on(notebook)
            from sqlalchemy import create_engine, inspect

            tables = set(inspect(create_engine(url)).get_table_names())
            assert "study_log" in tables and not {"studies", "trials", "version_info"} & tables  # no Optuna RDB tables
    finally:
        drop()


def test_the_cli_queues_a_search_or_refuses_bad_input_naming_the_field(notebook, capsys):
    from engine.cli import main

    common = ["sweep", "--db", notebook.url, "--preset", NEGATIVES, "--search", "tpe"]
    for bad, field in ((["--range", "optim.lr=1e-5:1e-1:log", "--trials", "0"], "trials"),
                       (["--range", "optim.lr=-1:1e-1:log"], "optim.lr"),
                       (["--range", "optim.lr=1e-5:1e-1:log", "--objective", "eval/nope:max"], "objective")):
        assert main([*common, *bad]) == 2
        assert f"error: {field}:" in capsys.readouterr().err
    assert notebook.list_runs() == [] and notebook.list_sweeps() == []
    assert main([*common, "--range", "optim.lr=1e-5:1e-1:log", "--range", "loss.temperature=0.05:1",
                 "--objective", "eval/prototype:max", "--trials", "40", "--parallel", "2", "--pruner", "halving"]) == 0
    (sweep,) = notebook.list_sweeps()
    settings = notebook.get_search(sweep.id).settings
    assert (settings["trials"], settings["parallel"], settings["pruner"], settings["sampler"]) == (40, 2, "halving", "tpe")
    assert len(sweep.run_ids) == 2 and f"sweep {sweep.id}: search of 40 trials" in capsys.readouterr().out
