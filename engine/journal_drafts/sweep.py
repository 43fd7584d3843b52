"""A sweep's entry, written when its last run ends: the swept fields, a table of each run's values against the
chosen final metric (± its 95 % interval where the run has one), the best run and its figures, the parallel
coordinates as a PNG, and a link to every run."""

from __future__ import annotations

import math
from typing import Any

from engine.field_labels import label_in_words
from engine.journal_drafts.compose import code, table, value_text
from engine.journal_drafts.facts import flatten, gather_run_facts
from engine.journal_drafts.figures import run_figures
from lab_notes import EVAL_ACC_DISCRIMINATOR, EVAL_ACC_PROTOTYPE, LOSS_TOTAL, SNAPSHOT_FEW_SHOT, Figure, Notebook

PREFERRED_METRICS = (EVAL_ACC_PROTOTYPE, EVAL_ACC_DISCRIMINATOR, LOSS_TOTAL)  # the sweep page's default choice


def chosen_metric(latest: dict[int, dict[str, tuple[int, float]]]) -> str | None:
    """The metric the sweep page judges runs by unless told otherwise."""
    keys = sorted(set().union(*(values.keys() for values in latest.values()))) if latest else []
    return next((k for k in PREFERRED_METRICS if k in keys), keys[0] if keys else None)


def final_value(metric: str, latest: dict[str, tuple[int, float]],
                report: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """The run's final `metric` and its 95 % half-width: a held-out accuracy from the run's few-shot report when
    it has one (the final evaluation), else the last logged value (and its eval/ci95 twin)."""
    if metric.startswith("eval/acc/"):
        judge = metric.removeprefix("eval/acc/")
        summary = ((report or {}).get("accuracy") or {}).get(judge)
        if summary:
            return summary["mean"], summary["ci95"]
        ci = latest.get(f"eval/ci95/{judge}")
        return (latest[metric][1] if metric in latest else None), (ci[1] if ci else None)
    return (latest[metric][1] if metric in latest else None), None


def sweep_entry(book: Notebook, sweep_id: int, p: dict) -> tuple[str, str, list[Figure]]:
    """(title, Markdown, figures) of a sweep's entry."""
    from lab_notes.plots import parallel_png

    sweep = book.get_sweep(sweep_id)
    runs = [book.get_run(i) for i in sweep.run_ids]
    latest = {run.id: book.latest_metrics(run.id) for run in runs}
    reports = book.latest_snapshots([r.id for r in runs], SNAPSHOT_FEW_SHOT)
    metric = chosen_metric(latest)
    higher = metric is not None and "acc" in metric
    paths = list(sweep.fields)
    values = {run.id: {path: flatten(run.config).get(path) for path in paths} for run in runs}
    scores = {run.id: final_value(metric, latest[run.id], reports.get(run.id)) if metric else (None, None)
              for run in runs}
    fields = "; ".join(f"{label_in_words(path)} ({code(path)}): {', '.join(code(v) for v in chosen)}"
                       for path, chosen in sweep.fields.items())
    lines = [p["sweep_fields"].format(mode=sweep.mode, fields=fields), ""]
    scored = {i: s for i, (s, _) in scores.items() if s is not None and math.isfinite(s)}
    figures: list[Figure] = []
    problems: list[tuple[str, str]] = []
    if metric is None or not scored:
        lines += [p["sweep_none_scored"].format(metric=code(metric or "—")), ""]
    else:
        rows = [[f"[{p['run'].format(id=run.id)}](/run?run={run.id})", p["status_words"].get(run.status, run.status),
                 *[code(value_text(values[run.id][path])) for path in paths], _score(*scores[run.id])]
                for run in runs]
        lines += [p["sweep_table"].format(metric=code(metric)), "",
                  *table([p["run"].format(id="").strip() or "run", p["status"], *[code(x) for x in paths],
                          code(metric)], rows), ""]
        best = (max if higher else min)(scored, key=lambda i: scored[i])
        lines += [p["sweep_best"].format(metric=code(metric), id=best), ""]
        caption = p["parallel"].format(metric=metric)
        try:
            figures.append(Figure(f"sweep-{sweep_id}-parallel.png",
                                  parallel_png([values[r.id] for r in runs], metric,
                                               [scores[r.id][0] for r in runs], title=caption), caption))
        except Exception as error:  # noqa: BLE001 - said in the entry, never fatal
            problems.append((caption, f"{type(error).__name__}: {error}"))
        best_figures, best_problems = run_figures(book, gather_run_facts(book, best), p)
        figures += [Figure(f.name, f.image, p["best_prefix"].format(id=best, caption=f.caption))
                    for f in best_figures]
        problems += best_problems
    lines += [p["sweep_runs"], "",
              *[f"- [{p['run'].format(id=r.id)}](/run?run={r.id}) {code(r.name)} — "
                f"{p['status_words'].get(r.status, r.status)}" for r in runs], ""]
    if problems:
        lines += [f"## {p['figures']}", "", *[f"- {p['missing_figure'].format(name=n, why=w)}" for n, w in problems],
                  ""]
    return p["sweep_title"].format(id=sweep_id, name=sweep.name), "\n".join(lines), figures


def _score(mean: float | None, ci95: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.3f} ± {ci95:.3f}" if ci95 is not None else f"{mean:.4g}"
