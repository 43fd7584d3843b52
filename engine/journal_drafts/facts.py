"""What a run's draft is written from, read from the notebook in one place: the run, what changed against its
parent (or its preset), its last metrics, its few-shot report and the earlier run it is compared with. Torch-free
and read-only: the composer and the figures are pure functions of these facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.field_labels import label_in_words
from engine.presets import PRESET_INFO
from lab_notes import SNAPSHOT_FEW_SHOT, Notebook, Run
from lab_notes.keys import IMAGES_PER_S, LOSS_TOTAL

# The journal's own line for each preset's experiment: a draft's title starts with it.
JOURNAL_LINES = {
    "tiny": "tiny",
    "2022-12-08-disc-vit1": "disc + ViT-1",
    "2022-12-08-vit1": "ViT-1",
    "2022-12-14-negatives-infonce-diverges": "InfoNCE, negatives-only denominator",
    "2022-12-14-normalized-infonce-2d": "normalised InfoNCE (B,2) + disc",
    "2022-12-14-vit6-1d-no-accuracy": "ViT-6 (B,1)",
    "2022-12-14-vit6-1d-disc": "ViT-6 (B,1) + disc",
    "2023-01-12-vit-ae-shared-decoders": "ViT AE, shared decoders",
    "2023-01-12-vit-ae-separate-decoders": "ViT AE, separate decoders",
    "2023-01-12-mae-two-decoders-different-targets": "MAE, two decoders, different targets",
}
JOURNAL_SCALE = "-journal-scale"
ENDED = ("completed", "stopped", "diverged", "failed")


def journal_line(preset: str | None) -> str:
    """The preset's line in the journal ("disc + ViT-1"); its name for a preset without one; "" for none."""
    if not preset:
        return ""
    if preset.endswith(JOURNAL_SCALE) and preset.removesuffix(JOURNAL_SCALE) in JOURNAL_LINES:
        return JOURNAL_LINES[preset.removesuffix(JOURNAL_SCALE)] + " (journal scale)"
    return JOURNAL_LINES.get(preset, preset)


@dataclass(frozen=True)
class Change:
    """One config field that differs: "Label: old → new"."""

    path: str
    label: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Earlier:
    """The run a draft compares with: the parent, else the latest earlier finished run of the same preset."""

    run_id: int
    status: str
    is_parent: bool
    report: dict[str, Any] | None


@dataclass(frozen=True)
class RunFacts:
    run: Run
    line: str
    preset_summary: str | None
    changes: list[Change]
    changed_from_parent: bool
    latest: dict[str, tuple[int, float]]
    images_per_s: float | None
    report: dict[str, Any] | None
    earlier: Earlier | None
    series_keys: list[str] = field(default_factory=list)

    @property
    def last_step(self) -> int | None:
        """The last step the run logged (its total loss's, else any metric's); None without metrics."""
        if LOSS_TOTAL in self.latest:
            return self.latest[LOSS_TOTAL][0]
        return max((step for step, _ in self.latest.values()), default=None)


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1}} -> {"optim.lr": 1}; lists stay values."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config} if prefix else {}
    found: dict[str, Any] = {}
    for key, value in config.items():
        found.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return found


def config_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """Every leaf field whose value differs, in the order of `after` (then fields only `before` has)."""
    old, new = flatten(before), flatten(after)
    paths = list(dict.fromkeys([*new, *old]))
    return [Change(p, label_in_words(p), old.get(p), new.get(p)) for p in paths if old.get(p) != new.get(p)]


def gather_run_facts(notebook: Notebook, run_id: int) -> RunFacts:
    """Everything a run's draft says, read once."""
    run = notebook.get_run(run_id)
    info = PRESET_INFO.get(run.preset or "")
    parent = _parent(notebook, run)
    if parent is not None:
        changes, from_parent = config_changes(parent.config, run.config), True
    elif info is not None:
        changes, from_parent = config_changes(info.config.model_dump(mode="json"), run.config), False
    else:
        changes, from_parent = [], False
    latest = notebook.latest_metrics(run_id)
    keys = notebook.metric_keys(run_id)
    report = notebook.latest_snapshots([run_id], SNAPSHOT_FEW_SHOT).get(run_id)
    return RunFacts(run, journal_line(run.preset), info.summary if info else None, changes, from_parent, latest,
                    notebook.metric_median(run_id, IMAGES_PER_S), report, _earlier(notebook, run, parent), keys)


def _parent(notebook: Notebook, run: Run) -> Run | None:
    if run.parent_id is None:
        return None
    try:
        return notebook.get_run(run.parent_id)
    except Exception:  # noqa: BLE001 - a parent that cannot be read is simply not compared with
        return None


def _earlier(notebook: Notebook, run: Run, parent: Run | None) -> Earlier | None:
    """The parent, else the latest run of the same preset that ended completed before this one was created."""
    chosen = parent
    if chosen is None and run.preset:
        earlier = [r for r in notebook.list_runs("completed", search=run.preset)
                   if r.preset == run.preset and r.id < run.id]
        chosen = earlier[0] if earlier else None  # list_runs is newest first
    if chosen is None or chosen.status == "deleted":
        return None
    report = notebook.latest_snapshots([chosen.id], SNAPSHOT_FEW_SHOT).get(chosen.id)
    return Earlier(chosen.id, chosen.status, chosen is parent, report)
