"""Metric series helpers: non-finite values in and out of SQL, and shape-keeping downsampling."""

from __future__ import annotations

import math
from operator import itemgetter
from typing import Iterable

import numpy as np
from tsdownsample import MinMaxLTTBDownsampler


def to_sql(value: float) -> float | None:
    """SQLite turns NaN into NULL anyway; doing it here makes the rule explicit and the same on PostgreSQL."""
    value = float(value)
    return None if math.isnan(value) else value


def from_sql(values: list[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` points that keep the curve's shape (MinMaxLTTB over the finite points), always with
    the global minimum, the global maximum, the last point, and the non-finite points (markers on a chart; evenly
    thinned only if they alone exceed the budget)."""
    if len(steps) <= max_points:
        return steps, values
    finite = np.isfinite(values)
    nonfinite_idx = np.flatnonzero(~finite)
    budget_nonfinite = min(len(nonfinite_idx), max_points // 4)
    if budget_nonfinite < len(nonfinite_idx):
        nonfinite_idx = nonfinite_idx[np.linspace(0, len(nonfinite_idx) - 1, budget_nonfinite).astype(np.int64)]
    finite_idx = np.flatnonzero(finite)
    keep = [nonfinite_idx, [len(steps) - 1]]
    budget = max_points - len(nonfinite_idx) - 3  # room for min, max and last
    if len(finite_idx):
        finite_values = values[finite_idx]
        keep += [finite_idx[[int(np.argmin(finite_values)), int(np.argmax(finite_values))]]]
        if len(finite_idx) > budget >= 4:
            chosen = MinMaxLTTBDownsampler().downsample(steps[finite_idx].astype(np.float64), finite_values,
                                                          n_out=budget - budget % 2)
            keep.append(finite_idx[chosen])
        elif budget >= len(finite_idx):
            keep.append(finite_idx)
    index = np.unique(np.concatenate([np.asarray(k, dtype=np.int64) for k in keep]))
    return steps[index], values[index]


# --- rollups: per-bucket summaries kept at write time, so a long series is read as ~2 points per bucket -----------

BUCKET_STEPS = 1024
ROLLUP_COLUMNS = ("n", "min_step", "min_value", "max_step", "max_value", "last_step", "last_value", "nan_step",
                  "posinf_step", "neginf_step")


def _empty() -> dict:
    return dict.fromkeys(ROLLUP_COLUMNS) | {"n": 0}


def merge(old: dict, new: dict) -> dict:
    """Two summaries of the same bucket as one (`new` holds later writes)."""
    merged = dict(old)
    merged["n"] = old["n"] + new["n"]
    if new["last_step"] is not None and (old["last_step"] is None or new["last_step"] >= old["last_step"]):
        merged["last_step"], merged["last_value"] = new["last_step"], new["last_value"]
    for kind in ("nan_step", "posinf_step", "neginf_step"):
        steps = [s for s in (old[kind], new[kind]) if s is not None]
        merged[kind] = min(steps) if steps else None
    if new["min_value"] is not None and (old["min_value"] is None or new["min_value"] < old["min_value"]):
        merged["min_step"], merged["min_value"] = new["min_step"], new["min_value"]
    if new["max_value"] is not None and (old["max_value"] is None or new["max_value"] > old["max_value"]):
        merged["max_step"], merged["max_value"] = new["max_step"], new["max_value"]
    return merged


def summarise(rows: Iterable[tuple[int, str, int, float | None]]) -> dict[tuple[int, str, int], dict]:
    """(run_id, key, step, stored value) rows -> {(run_id, key, bucket): summary}. Written for speed: it runs on
    every flush, so it groups first and lets min/max do the per-point work in C."""
    groups: dict[tuple[int, str, int], list[tuple[int, float | None]]] = {}
    for run_id, key, step, value in rows:
        where = (run_id, key, step // BUCKET_STEPS)
        points = groups.get(where)
        if points is None:
            points = groups[where] = []
        points.append((step, value))
    buckets = {}
    for where, points in groups.items():
        bucket = _empty()
        bucket["n"] = len(points)
        bucket["last_step"], bucket["last_value"] = max(reversed(points), key=itemgetter(0))  # ties: the latest
        finite = [p for p in points if p[1] is not None and p[1] - p[1] == 0]  # x - x is NaN for ±inf
        if finite:
            bucket["min_step"], bucket["min_value"] = min(finite, key=itemgetter(1))
            bucket["max_step"], bucket["max_value"] = max(finite, key=itemgetter(1))
        if len(finite) < len(points):
            for step, value in points:
                kind = "nan_step" if value is None else ("posinf_step" if value > 0 else "neginf_step") \
                    if value is None or value - value != 0 else None
                if kind and (bucket[kind] is None or step < bucket[kind]):
                    bucket[kind] = step
        buckets[where] = bucket
    return buckets


def overview(summaries: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The points a chart needs from bucket summaries in step order: each bucket's min and max, its first NaN /
    ±inf, and the last point of the series."""
    points: dict[int, float] = {}
    for b in summaries:
        if b["min_step"] is not None:
            points[b["min_step"]] = b["min_value"]
            points[b["max_step"]] = b["max_value"]
        for kind, value in (("nan_step", math.nan), ("posinf_step", math.inf), ("neginf_step", -math.inf)):
            if b[kind] is not None:
                points[b[kind]] = value
    if summaries:
        last = summaries[-1]
        points[last["last_step"]] = math.nan if last["last_value"] is None else last["last_value"]
    steps = np.array(sorted(points), dtype=np.int64)
    return steps, np.array([points[s] for s in steps.tolist()], dtype=np.float64)
