"""A run's draft as Markdown, a pure function of its facts and a phrase table: the journal's own shape (what was
tried, what happened, against what came before), every fixed phrase from the table, every number formatted here
the same way in every language. Values a person typed (config strings, output lines) go into code spans and
blocks, so they are shown as typed and never read as Markdown."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any, Sequence

from engine.journal_drafts.facts import Change, RunFacts

JUDGE_NAMES = {"prototype": "nearest prototype", "discriminator": "discriminator", "knn": "k-NN",
               "linear_probe": "linear probe"}
LAST_OUTPUT_LINES = 20


# --- how numbers and values are written (the same in every language) --------------------------------------------

def number(value: float, digits: int = 4) -> str:
    """A metric value: 4 significant digits; NaN and ±inf by name."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def interval(summary: dict[str, float]) -> str:
    """An accuracy and its 95 % interval, as the Evaluation tab's table writes it: "0.734 ± 0.021"."""
    return f"{summary['mean']:.3f} ± {summary['ci95']:.3f}"


def duration(started: dt.datetime | None, ended: dt.datetime | None) -> str:
    """h:mm:ss between two moments; "—" when either is unknown."""
    if started is None or ended is None:
        return "—"
    seconds = max(0, int(round((ended - started).total_seconds())))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def code(text: Any) -> str:
    """`text` as an inline code span that no backtick inside it can close early."""
    shown = value_text(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or not shown else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def block(text: str, language: str = "") -> list[str]:
    """`text` as a fenced code block whose fence is longer than any run of backticks in it."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def value_text(value: Any) -> str:
    """A config value as the form shows it: numbers by %g, None as "none", lists and dicts as JSON."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def change_line(change: Change) -> str:
    return f"- {change.label}: {code(change.old)} → {code(change.new)} ({code(change.path)})"


def verdict(mine: dict[str, float], theirs: dict[str, float], p: dict) -> str:
    """higher, lower, or within the intervals (when the two 95 % intervals overlap)."""
    if abs(mine["mean"] - theirs["mean"]) <= mine["ci95"] + theirs["ci95"]:
        return p["within"]
    return p["higher"] if mine["mean"] > theirs["mean"] else p["lower"]


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [" | ".join(c.replace("|", "\\|") for c in row) for row in [header, *rows]]
    return [f"| {cells[0]} |", "|" + "---|" * len(header), *[f"| {c} |" for c in cells[1:]]]


# --- the entry ---------------------------------------------------------------------------------------------------

def run_title(facts: RunFacts, p: dict) -> str:
    """"disc + ViT-1 — run 12"; the run's name stands in for a run without a preset."""
    head = facts.line or facts.run.name
    return f"{head} — {p['run'].format(id=facts.run.id)}"


def run_body(facts: RunFacts, p: dict, figure_problems: Sequence[tuple[str, str]] = ()) -> str:
    lines = [f"## {p['tried']}", "", *_tried(facts, p), "", f"## {p['happened']}", "", *_happened(facts, p), "",
             f"## {p['before']}", "", *_before(facts, p), ""]
    if figure_problems:
        lines += [f"## {p['figures']}", "",
                  *[f"- {p['missing_figure'].format(name=name, why=why)}" for name, why in figure_problems], ""]
    return "\n".join(lines)


def _tried(facts: RunFacts, p: dict) -> list[str]:
    run = facts.run
    lines = [p["preset"].format(preset=run.preset, summary=facts.preset_summary or "") if run.preset
             else p["no_preset"], ""]
    if facts.changed_from_parent:
        lines += [p["against_parent"].format(id=run.parent_id), ""]
    elif run.preset:
        lines += [p["against_preset"], ""]
    if facts.changed_from_parent or run.preset:
        lines += [change_line(c) for c in facts.changes] if facts.changes else [p["no_changes"]]
    return lines


def _happened(facts: RunFacts, p: dict) -> list[str]:
    run = facts.run
    step = facts.last_step
    speed = "—" if facts.images_per_s is None else f"{facts.images_per_s:.1f}"
    lines = table([p["status"], p["duration"], p["steps"], p["device"], p["images_per_s"]],
                  [[p["status_words"].get(run.status, run.status), duration(run.started_at, run.ended_at),
                    "—" if step is None else str(step), code(run.device or "—"), speed]])
    lines.append("")
    losses = {k: v for k, v in sorted(facts.latest.items()) if k.startswith("loss/")}
    if not facts.latest:
        lines += [p["no_metrics"], ""]
    elif losses:
        lines += [p["final_losses"].format(step=step), "", *[f"- `{k}` = {number(v)}" for k, (_, v) in
                                                               losses.items()], ""]
    lines += _report(facts, p)
    if run.status == "diverged":
        lines += ["", *_diverged(run.divergence_report or {}, p)]
    elif run.status == "failed":
        lines += ["", p["failed"].format(reason=run.status_reason or "—"), "", *_last_output(run.log_tail, p)]
    elif run.status == "stopped":
        lines += ["", p["stopped"].format(step=step if step is not None else 0)]
    return lines


def _report(facts: RunFacts, p: dict) -> list[str]:
    report = facts.report
    if report is None:
        why = p["no_report_failed"] if facts.run.status != "completed" else p["no_report_none"]
        return [p["no_report"].format(why=why)]
    held, seen = report.get("accuracy") or {}, report.get("seen_classes") or {}
    header = [p["judge"], p["held_out_column"].format(judged_on=report.get("judged_on", "held-out classes"))]
    header += [p["seen_column"]] if seen else []
    rows = [[JUDGE_NAMES.get(j, j), interval(held[j]), *([interval(seen[j])] if j in seen else ["—"] * bool(seen))]
            for j in held]
    return [p["held_out"].format(n_way=report.get("n_way"), k_shot=report.get("k_shot"),
                                 episodes=report.get("episodes")), "", *table(header, rows)]


def _diverged(report: dict[str, Any], p: dict) -> list[str]:
    incidents = report.get("incidents") or [{}]
    last = incidents[-1]
    diagnostics = last.get("diagnostics") or {}
    overflow = diagnostics.get("overflow")
    why = overflow.get("explanation") if isinstance(overflow, dict) else None
    lines = [p["diverged"].format(step=last.get("step", report.get("first_step")), reason=report.get("reason"),
                                  stage=last.get("stage", "—"), policy=report.get("policy", "—"),
                                  action=last.get("action", "—"))]
    if why:
        lines += ["", p["mechanism"].format(why=why)]
    if diagnostics:
        lines += ["", p["diagnostics"], "", *block(json.dumps(diagnostics, indent=2, default=str), "json")]
    return lines


def _last_output(log_tail: str, p: dict) -> list[str]:
    tail = [line for line in log_tail.splitlines() if line.strip()][-LAST_OUTPUT_LINES:]
    return [p["last_lines"], "", *block("\n".join(tail))] if tail else [p["no_output"]]


def _before(facts: RunFacts, p: dict) -> list[str]:
    earlier = facts.earlier
    if earlier is None:
        return [p["no_earlier"]]
    heading = (p["earlier_parent"].format(id=earlier.run_id, status=p["status_words"].get(earlier.status,
                                                                                         earlier.status))
               if earlier.is_parent else p["earlier_latest"].format(id=earlier.run_id))
    theirs = (earlier.report or {}).get("accuracy")
    mine = (facts.report or {}).get("accuracy")
    if not theirs:
        return [heading, "", p["earlier_no_report"].format(id=earlier.run_id)]
    other = p["run"].format(id=earlier.run_id)
    rows = [[JUDGE_NAMES.get(j, j), interval(mine[j]) if mine and j in mine else "—", interval(theirs[j]),
             verdict(mine[j], theirs[j], p) if mine and j in mine else "—"] for j in theirs]
    return [heading, "", *table([p["judge"], p["this_run"], other, p["verdict"]], rows)]
