"""Sweeps as pure functions: `path=v1,v2,…` specs over up to three config fields, expanded into one validated
config per run — every combination (grid) or the values taken together (list).

Only training fields are swept (`sweepable_fields`): the data, model, losses, optimiser, schedule and guard. Where
a run executes (`runtime.*`: device, processes, host, Slurm partition, account and flags) and which file it reads
(`data.path`) are not experiments, and a swept value is read as JSON, where `\n` is a real newline."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

from engine.config import ConfigError, Problem, RunConfig, with_overrides
from engine.search_space import (MAX_PARALLEL, MAX_TRIALS, OBJECTIVE_KEYS, PRUNERS, SAMPLERS, Range, SearchSettings,
                                 parse_objective, parse_range, search_settings)
from engine.sweepable import NEVER_SWEPT, SWEPT_SECTIONS, sweepable_fields

MAX_FIELDS = 3
MAX_RUNS = 64
Mode = Literal["grid", "list"]
__all__ = ["MAX_FIELDS", "MAX_PARALLEL", "MAX_RUNS", "MAX_TRIALS", "Mode", "NEVER_SWEPT", "OBJECTIVE_KEYS",
           "PRUNERS", "Range", "SAMPLERS", "SWEPT_SECTIONS", "SearchSettings", "SweepPoint", "expand", "parse_field",
           "parse_objective", "parse_range", "search_overview", "search_settings", "submit_search",
           "sweepable_fields"]


@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: the swept values (path -> value) and its validated config."""

    values: dict[str, Any]
    config: RunConfig

    @property
    def label(self) -> str:
        return ", ".join(f"{path.rsplit('.', 1)[-1]}={value}" for path, value in self.values.items())


def parse_field(spec: str) -> tuple[str, list[Any]]:
    """`optim.lr=1e-3,1e-2` -> ("optim.lr", [0.001, 0.01]); each value read as JSON when it parses, else text."""
    if "=" not in spec:
        raise ConfigError([Problem(spec, "a swept field is written path=v1,v2,…, e.g. optim.lr=1e-3,1e-2")])
    path, raw = spec.split("=", 1)
    values = []
    for text in (v.strip() for v in raw.split(",")):
        if not text:
            continue
        try:
            values.append(json.loads(text))
        except json.JSONDecodeError:
            values.append(text)
    if not values:
        raise ConfigError([Problem(path.strip(), "no values to sweep")])
    return path.strip(), values


def expand(base: RunConfig, fields: dict[str, list[Any]], mode: Mode = "grid") -> list[SweepPoint]:
    """Every run of the sweep, each validated; ConfigError naming the field (and the run) when one is not."""
    if not fields:
        raise ConfigError([Problem("sweep", "name at least one field to sweep")])
    if len(fields) > MAX_FIELDS:
        raise ConfigError([Problem("sweep", f"at most {MAX_FIELDS} fields, got {len(fields)}: {', '.join(fields)}")])
    paths = list(fields)
    allowed = set(sweepable_fields())
    refused = [Problem(p, f"not a field a sweep may vary: only the fields of {', '.join(SWEPT_SECTIONS)} "
                          f"(not {', '.join(NEVER_SWEPT)}); where a run executes is set once, in the form")
               for p in paths if p not in allowed]
    if refused:
        raise ConfigError(refused)
    if mode == "grid":
        combos = list(itertools.product(*(fields[p] for p in paths)))
    else:
        lengths = {len(fields[p]) for p in paths}
        if len(lengths) > 1:
            raise ConfigError([Problem("sweep", "a list sweep takes the values together: give every field the same "
                                                f"number of values, got {', '.join(str(len(fields[p])) for p in paths)}")])
        combos = list(zip(*(fields[p] for p in paths)))
    if len(combos) > MAX_RUNS:
        raise ConfigError([Problem("sweep", f"{len(combos)} runs is more than {MAX_RUNS}; sweep fewer values")])
    points = []
    for combo in combos:
        values = dict(zip(paths, combo))
        try:
            config = with_overrides(base, [f"{p}={json.dumps(v)}" for p, v in values.items()])
        except ConfigError as error:
            raise ConfigError([Problem(p.path, f"{p.message} (in the run with {values})")
                               for p in error.problems]) from None
        points.append(SweepPoint(values, config))
    return points


def search_overview(notebook: Any, sweep_id: int) -> Any:
    """A search as the Sweep page shows it (`engine.search_view.SearchOverview`): trials, best so far,
    importances. Imported here, when asked, so a grid sweep's page never loads Optuna."""
    from engine.search_view import search_overview as overview

    return overview(notebook, sweep_id)


def submit_search(notebook: Any, base: RunConfig, settings: SearchSettings, *, name: str, preset: str | None,
                  owner: str | None = None) -> int:
    """Record a checked search and queue its first trials (`engine.search.submit_search`); its sweep id."""
    from engine.search import submit_search as submit

    return submit(notebook, base, settings, name=name, preset=preset, owner=owner)
