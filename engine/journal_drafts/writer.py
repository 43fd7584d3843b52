"""Writing drafts into the notebook: one ended run's (or a sweep's), and the catch-up pass that writes every
ending still without one. Idempotent: the notebook records each ending written up (`run_ending_key`) in the same
transaction as its draft, and rewrites only a draft no person has edited (`Notebook.save_draft`)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.exc import OperationalError

from engine.journal_drafts.compose import run_body, run_title
from engine.journal_drafts.facts import ENDED, gather_run_facts
from engine.journal_drafts.figures import run_figures
from engine.journal_drafts.phrases import journal_language, phrases
from lab_notes import Notebook, Refused, run_ending_key, sweep_ending_key


@dataclass(frozen=True)
class Written:
    """A draft written (or rewritten): its note, title and Markdown."""

    note_id: int
    title: str
    body: str


def has_a_step(book: Notebook, run_id: int) -> bool:
    """Whether the run trained at least one step (a run stopped before its first step gets no draft)."""
    return any(step >= 1 for step, _ in book.latest_metrics(run_id).values())


def write_run_draft(book: Notebook, run_id: int, *, language: str | None = None, draw=None) -> Written | None:
    """Write (or rewrite, unless edited) the draft of an ended run; None for a run stopped before its first step
    (its ending is recorded all the same). Refused for a run that has not ended; NotFound for no such run."""
    run = book.get_run(run_id)
    if run.status not in ENDED:
        raise Refused(f"run {run_id} is {run.status}: a draft is written only for a run that has ended")
    key = run_ending_key(run_id, run.attempt)
    if run.status == "stopped" and not has_a_step(book, run_id):
        book.mark_ending_written(key, run_id=run_id)
        return None
    language = language or journal_language()
    p = phrases(language)
    facts = gather_run_facts(book, run_id)
    figures, problems = run_figures(book, facts, p, draw=draw)
    title, body = run_title(facts, p), run_body(facts, p, problems)
    note_id = book.save_draft(run_id=run_id, title=title, body=body, figures=figures, language=language,
                              ending=key)
    return Written(note_id, title, body)


def sweep_ending(book: Notebook, sweep_id: int) -> str | None:
    """The sweep's ending key when every run of it has ended (None while one is queued or running)."""
    runs = [book.get_run(i) for i in book.get_sweep(sweep_id).run_ids]
    if any(r.status in ("queued", "running") for r in runs):
        return None
    return sweep_ending_key(sweep_id, sum(r.attempt for r in runs))


def write_sweep_draft(book: Notebook, sweep_id: int, *, language: str | None = None) -> Written | None:
    """Write (or rewrite, unless edited) the entry of a sweep whose runs have all ended; None while one has not."""
    from engine.journal_drafts.sweep import sweep_entry

    key = sweep_ending(book, sweep_id)
    if key is None:
        return None
    language = language or journal_language()
    title, body, figures = sweep_entry(book, sweep_id, phrases(language))
    note_id = book.save_draft(sweep_id=sweep_id, title=title, body=body, figures=figures, language=language,
                              ending=key)
    return Written(note_id, title, body)


TRIES_PER_ENDING = 3  # an ending whose draft keeps failing (a bug) is left alone after this many tries


def catch_up(book: Notebook, *, failures: dict[str, int] | None = None, limit: int = 20,
             all_sweeps: bool = False) -> list[Written]:
    """Write the draft of every ended run that has none for its latest ending (oldest first), then the entry of
    each sweep of those runs whose runs have all ended and that has none for that ending (`all_sweeps`: look at
    every sweep, as a worker does once when it starts, in case one crashed between a run's draft and its
    sweep's). `failures` counts the tries of endings whose draft raised; one is left alone after
    TRIES_PER_ENDING, so a bug in one draft never stops the others. A database outage (OperationalError) is the
    caller's to wait out."""
    failures = failures if failures is not None else {}
    given_up = {key for key, tries in failures.items() if tries >= TRIES_PER_ENDING}
    written: list[Written] = []
    sweeps: set[int] = set()
    for ended in book.endings_without_draft(limit=limit + len(given_up)):
        key = run_ending_key(ended.run_id, ended.attempt)
        if key not in given_up:
            written += _tried(key, failures, lambda: write_run_draft(book, ended.run_id))
        in_sweep = book.get_run(ended.run_id).sweep_id
        if in_sweep is not None:
            sweeps.add(in_sweep)
    if all_sweeps:
        sweeps.update(sweep.id for sweep in book.list_sweeps())
    for sweep_id in sorted(sweeps):
        sweep_key = sweep_ending(book, sweep_id)
        if sweep_key is not None and sweep_key not in given_up and not book.ending_written(sweep_key):
            written += _tried(sweep_key, failures, lambda: write_sweep_draft(book, sweep_id))
    return written


def _tried(key: str, failures: dict[str, int], write: Callable[[], Written | None]) -> list[Written]:
    """What `write` wrote ([] for nothing, or when it raised: counted in `failures` and printed)."""
    try:
        done = write()
    except Refused:
        return []  # resumed or deleted meanwhile: its next ending gets the draft
    except OperationalError:
        raise
    except Exception:  # noqa: BLE001 - one draft's bug is that draft's
        failures[key] = failures.get(key, 0) + 1
        print(f"drafter: the draft of {key} failed (try {failures[key]} of {TRIES_PER_ENDING}):", flush=True)
        traceback.print_exc()
        return []
    return [done] if done is not None else []
