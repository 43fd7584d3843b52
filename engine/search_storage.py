"""A search's Optuna study, kept in the notebook: Optuna's `JournalStorage` over a backend whose log is the
notebook's `study_log` rows (`lab_notes.study_log`). Optuna's RDB storage would bring its own tables and its own
`alembic_version`, which is ours in the same database; the journal brings nothing but rows of our own table.

A study is opened inside one search step (one transaction) and thrown away after it: a fresh `JournalStorage`
replays the log as committed, so a step that rolled back leaves no trace in anyone's memory either."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend

from engine.search_space import SearchSettings
from lab_notes.study_log import SearchStep

STUDY_NAME = "search"
optuna.logging.set_verbosity(optuna.logging.WARNING)  # a worker's log is for runs, not for every trial told


class NotebookJournal(BaseJournalBackend):
    """Optuna's journal backend over one search step's rows: reads and appends happen in the step's transaction,
    under its lock on the sweep, so no two processes interleave their entries."""

    def __init__(self, step: SearchStep) -> None:
        self.step = step

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return self.step.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.step.append_logs(logs)


def sampler_for(settings: SearchSettings, told: int) -> optuna.samplers.BaseSampler:
    """The search's sampler, seeded by the search's seed and how many trials it has, so that a sampler made anew
    at each step does not draw the same values again."""
    seed = settings.seed * 100_003 + told
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        space = {r.path: r.grid_values() for r in settings.range_list()}
        return optuna.samplers.GridSampler(space, seed=settings.seed)
    startup = max(2, min(10, settings.trials // 4))  # a small budget cannot spend ten trials guessing
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, constant_liar=settings.parallel > 1)


def pruner_for(settings: SearchSettings) -> optuna.pruners.BasePruner:
    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, min(5, settings.trials // 5)))
    if settings.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource="auto", reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(step: SearchStep, settings: SearchSettings) -> optuna.Study:
    """The search's study in this step (made at its first step), with its sampler and pruner."""
    storage = JournalStorage(NotebookJournal(step))
    if not storage.get_all_studies():
        storage.create_new_study([optuna.study.StudyDirection[settings.direction.upper()]], STUDY_NAME)
    told = len(storage.get_all_trials(storage.get_study_id_from_name(STUDY_NAME), deepcopy=False))
    return optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=sampler_for(settings, told),
                             pruner=pruner_for(settings))


def replayed_trials(entries: list[dict[str, Any]]) -> list[optuna.trial.FrozenTrial]:
    """A study's trials replayed from its journal entries, read-only (for the Sweep page)."""
    study = replayed_study(entries)
    return [] if study is None else study.get_trials(deepcopy=False)


def replayed_study(entries: list[dict[str, Any]]) -> optuna.Study | None:
    """The study its journal entries make, in memory (None before its first step)."""

    class Frozen(BaseJournalBackend):
        def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
            return entries[log_number_from:]

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            raise RuntimeError("a replayed study is read-only")

    storage = JournalStorage(Frozen())
    if not storage.get_all_studies():
        return None
    return optuna.load_study(study_name=STUDY_NAME, storage=storage)
