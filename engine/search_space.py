"""What a search is, as pure functions: its ranges (`optim.lr=1e-5:1e-1:log`, `loss.temperature=0.05:1`, an
integer field's `1:4`, choices `a,b,c`), its objective (`eval/prototype:max`), budget, parallelism, sampler and
pruner, each checked before anything is queued, with errors that name the field. Torch-free (the app imports it
through `engine.sweeps`); Optuna's distributions are built only when a study needs them."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel

from engine.config import ConfigError, Problem, RunConfig, with_overrides
from engine.sweepable import NEVER_SWEPT, SWEPT_SECTIONS, sweepable_fields

MAX_TRIALS = 200
MAX_PARALLEL = 16
GRID_POINTS = 5  # a range under the grid sampler: this many evenly (or log-) spaced values
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "halving", "none")
# The end-of-run few-shot report's judges (engine.evaluation.JUDGES, which imports torch).
JUDGES = ("prototype", "discriminator", "knn", "linear_probe")
# What a search may optimise: a judge's held-out accuracy in the end-of-run report, or a metric's last value.
OBJECTIVE_KEYS = (*(f"eval/{j}" for j in JUDGES), *(f"eval/acc/{j}" for j in JUDGES),
                  *(f"seen/acc/{j}" for j in JUDGES), "loss/total", "eval/loss/total", "eval/alignment",
                  "eval/uniformity")
DIRECTIONS = {"max": "maximize", "min": "minimize"}


@dataclass(frozen=True)
class Range:
    """One searched field: a numeric range (`low`..`high`, `log`-spaced or not, `integer` for int fields) or a
    list of `choices`."""

    path: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    def as_text(self) -> str:
        if self.choices is not None:
            return ",".join(json.dumps(c) for c in self.choices)
        return f"{self.low:g}:{self.high:g}" + (":log" if self.log else "")

    def distribution(self) -> Any:
        """The Optuna distribution this range samples from."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.choices is not None:
            return CategoricalDistribution(self.choices)
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return FloatDistribution(float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]

    def grid_values(self) -> list[Any]:
        """The values the grid sampler tries."""
        if self.choices is not None:
            return list(self.choices)
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.log:
            points = [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / (GRID_POINTS - 1))
                      for i in range(GRID_POINTS)]
        else:
            points = [low + i * (high - low) / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
        return sorted({int(round(p)) for p in points}) if self.integer else points


@dataclass(frozen=True)
class SearchSettings:
    """How a search chooses and judges its trials (stored with its sweep)."""

    objective: str
    direction: str  # maximize | minimize
    trials: int
    parallel: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    seed: int = 0
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> Range as a dict

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> "SearchSettings":
        known = {k: values[k] for k in SearchSettings.__dataclass_fields__ if k in values}
        return SearchSettings(**known)

    def range_list(self) -> list[Range]:
        return [Range(**r) for r in self.ranges.values()]


def _field_type(path: str, model: type[BaseModel] = RunConfig) -> Any:
    """The annotation of the config field at `path` (None when there is no such field)."""
    node: Any = model
    for part in path.split("."):
        if not (isinstance(node, type) and issubclass(node, BaseModel)) or part not in node.model_fields:
            return None
        node = node.model_fields[part].annotation
    return node


def parse_range(spec: str) -> Range:
    """`path=low:high[:log]` (integer fields give integers), or `path=a,b,c` (choices, each read as JSON when it
    parses); ConfigError naming the field when the range is empty, a log bound is not positive, or the field is
    not one a sweep may vary."""
    if "=" not in spec:
        raise ConfigError([Problem(spec, "a searched field is written path=low:high[:log] or path=a,b,c, "
                                         "e.g. optim.lr=1e-5:1e-1:log")])
    path, raw = (part.strip() for part in spec.split("=", 1))
    if path not in sweepable_fields():
        raise ConfigError([Problem(path, f"not a field a search may vary: only the fields of "
                                         f"{', '.join(SWEPT_SECTIONS)} (not {', '.join(NEVER_SWEPT)})")])
    if not raw:
        raise ConfigError([Problem(path, "empty range: give low:high (e.g. 1e-5:1e-1:log) or choices a,b,c")])
    if ":" not in raw:
        choices = []
        for text in (v.strip() for v in raw.split(",") if v.strip()):
            try:
                choices.append(json.loads(text))
            except json.JSONDecodeError:
                choices.append(text)
        if not choices:
            raise ConfigError([Problem(path, "empty range: no choices given")])
        return Range(path, choices=choices)
    parts = [p.strip() for p in raw.split(":")]
    log = len(parts) == 3 and parts[2] == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ConfigError([Problem(path, f"a range is low:high or low:high:log, got {raw!r}")])
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError([Problem(path, f"range bounds must be numbers, got {parts[0]!r} and {parts[1]!r}")]) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError([Problem(path, "range bounds must be finite numbers")])
    if low >= high:
        raise ConfigError([Problem(path, f"empty range {raw}: the low bound must be below the high bound")])
    if log and low <= 0:
        raise ConfigError([Problem(path, f"a log range needs bounds above 0, got {parts[0]} (try 1e-5:{parts[1]}:log)")])
    integer = _field_type(path) is int
    if integer and (low != int(low) or high != int(high)):
        raise ConfigError([Problem(path, f"{path} is a whole number: give whole-number bounds, got {raw}")])
    return Range(path, low, high, log, integer)


def parse_objective(spec: str) -> tuple[str, str]:
    """`eval/prototype:max` -> ("eval/prototype", "maximize"); ConfigError naming `objective` when the key or
    the direction is unknown. Without a direction, accuracies are maximised and everything else minimised."""
    key, _, way = spec.strip().rpartition(":") if spec.strip().endswith((":max", ":min")) else (spec.strip(), "", "")
    if key not in OBJECTIVE_KEYS:
        raise ConfigError([Problem("objective", f"unknown objective key {key!r}: one of {', '.join(OBJECTIVE_KEYS)}"
                                                " (with :max or :min)")])
    accuracy = "/acc/" in key or key.removeprefix("eval/") in JUDGES
    return key, DIRECTIONS[way] if way else ("maximize" if accuracy else "minimize")


def search_settings(base: RunConfig, ranges: list[str], objective: str, *, trials: int, parallel: int = 1,
                    sampler: str = "tpe", pruner: str = "median", seed: int = 0) -> SearchSettings:
    """Every part of a search checked, each problem naming its field; nothing is queued before this passes."""
    if not ranges:
        raise ConfigError([Problem("search", "name at least one field to search, e.g. optim.lr=1e-5:1e-1:log")])
    parsed = [parse_range(spec) for spec in ranges]
    twice = sorted({r.path for r in parsed if sum(o.path == r.path for o in parsed) > 1})
    if twice:
        raise ConfigError([Problem(p, "searched twice: give each field one range") for p in twice])
    key, direction = parse_objective(objective)
    if not 1 <= trials <= MAX_TRIALS:
        raise ConfigError([Problem("trials", f"a search's budget is 1 to {MAX_TRIALS} trials, got {trials}")])
    if not 1 <= parallel <= min(MAX_PARALLEL, trials):
        raise ConfigError([Problem("parallel", f"trials at once must be 1 to {min(MAX_PARALLEL, trials)} "
                                               f"(at most the budget), got {parallel}")])
    if sampler not in SAMPLERS:
        raise ConfigError([Problem("sampler", f"unknown sampler {sampler!r}: one of {', '.join(SAMPLERS)}")])
    if pruner not in PRUNERS:
        raise ConfigError([Problem("pruner", f"unknown pruner {pruner!r}: one of {', '.join(PRUNERS)}")])
    for r in parsed:  # each bound (each choice) must make a valid config, or every trial would fail
        values = r.choices if r.choices is not None else [int(v or 0) if r.integer else v for v in (r.low, r.high)]
        for value in values:
            try:
                with_overrides(base, [f"{r.path}={json.dumps(value)}"])
            except ConfigError as error:
                raise ConfigError([Problem(p.path, f"{p.message} (at {value!r}, an end of its range)")
                                   for p in error.problems]) from None
    return SearchSettings(key, direction, trials, parallel, sampler, pruner, seed,
                          {r.path: asdict(r) for r in parsed})
