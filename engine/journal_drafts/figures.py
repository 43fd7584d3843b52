"""A draft's figures, as real note figures (PNG): the loss and accuracy curves always, the latest reconstruction
grid and the held-out feature space where the run has them. A figure that cannot be drawn is left out and named,
with why, so the entry says so and is still written."""

from __future__ import annotations

from typing import Callable, Sequence

from engine.journal_drafts.facts import RunFacts
from lab_notes import Figure, Notebook
from lab_notes.keys import SNAPSHOT_FEATURES

LOSS_PREFIXES = ("loss/", "eval/loss/")
ACCURACY_PREFIXES = ("acc/", "eval/acc/", "seen/acc/")
RECONSTRUCTION_KEY = "reconstruction"
MAX_POINTS = 2000  # per curve: the notebook keeps its extremes and non-finite points when it thins a long series

Problem = tuple[str, str]  # (the figure's caption, why it could not be drawn)


def _curves(book: Notebook, facts: RunFacts, prefixes: Sequence[str], title: str, ylabel: str,
            what: str, p: dict) -> bytes:
    from lab_notes.plots import curves_png

    keys = [k for k in facts.series_keys if k.startswith(tuple(prefixes))]
    if not keys:
        raise LookupError(p["no_series"].format(what=what))
    series = {key: book.metric_history(facts.run.id, key, max_points=MAX_POINTS) for key in keys}
    return curves_png({k: v for k, v in series.items() if len(v[0])}, title=title, ylabel=ylabel)


def run_figures(book: Notebook, facts: RunFacts, p: dict, *,
                draw: Callable[[str, Callable[[], bytes | None]], bytes | None] | None = None
                ) -> tuple[list[Figure], list[Problem]]:
    """The run's figures and the ones that failed (caption, why). `draw(name, make)` wraps each drawing (a test
    uses it to make one fail)."""
    run_id = facts.run.id
    wanted: list[tuple[str, str, Callable[[], bytes | None]]] = [
        (f"run-{run_id}-losses.png", p["loss_curves"],
         lambda: _curves(book, facts, LOSS_PREFIXES, p["loss_curves"], "loss", "loss", p)),
        (f"run-{run_id}-accuracy.png", p["accuracy_curves"],
         lambda: _curves(book, facts, ACCURACY_PREFIXES, p["accuracy_curves"], "accuracy", "accuracy", p)),
    ]
    steps = book.image_steps(run_id, RECONSTRUCTION_KEY)
    if steps:
        wanted.append((f"run-{run_id}-reconstruction.png", p["reconstruction"].format(step=steps[-1]),
                       lambda: book.get_image(run_id, RECONSTRUCTION_KEY, steps[-1])))
    feature_steps = book.snapshot_steps(run_id, SNAPSHOT_FEATURES)
    if feature_steps:
        caption = p["features"].format(step=feature_steps[-1])

        def features() -> bytes:
            from lab_notes.plots import features_png

            return features_png(book.snapshot(run_id, SNAPSHOT_FEATURES, feature_steps[-1]), title=caption)

        wanted.append((f"run-{run_id}-features.png", caption, features))
    figures: list[Figure] = []
    problems: list[Problem] = []
    for name, caption, make in wanted:
        try:
            image = draw(name, make) if draw is not None else make()
            if not image:
                raise ValueError("nothing was drawn")
            figures.append(Figure(name, image, caption))
        except Exception as error:  # noqa: BLE001 - one figure's failure is said in the entry, never fatal
            problems.append((caption, _why(error)))
    return figures, problems


def _why(error: Exception) -> str:
    text = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
    return text if isinstance(error, LookupError) and text else f"{type(error).__name__}: {text}".rstrip(": ")
