"""Metric series helpers: non-finite values in and out of SQL, and shape-keeping downsampling."""

from __future__ import annotations

import math
from bisect import bisect_left
from itertools import groupby
from operator import gt, itemgetter
from typing import Iterable, Sequence

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


def upsert_rollups_sql(mark: str) -> str:
    """`merge` as SQL: insert each fresh bucket summary, or fold it into the stored one (`t`, the row as it was;
    every SET reads the old row). `mark` is the driver's placeholder. CASE rather than min()/LEAST, which treat
    NULL differently in SQLite and PostgreSQL."""
    def earliest(column: str) -> str:
        return (f"CASE WHEN excluded.{column} IS NULL THEN t.{column} WHEN t.{column} IS NULL "
                f"OR excluded.{column} < t.{column} THEN excluded.{column} ELSE t.{column} END")

    def extreme(column: str, by: str, better: str) -> str:
        return (f"CASE WHEN excluded.{by} IS NOT NULL AND (t.{by} IS NULL OR excluded.{by} {better} t.{by}) "
                f"THEN excluded.{column} ELSE t.{column} END")

    def latest(column: str) -> str:
        return f"CASE WHEN excluded.last_step >= t.last_step THEN excluded.{column} ELSE t.{column} END"

    update = {"n": "t.n + excluded.n",
              **{c: extreme(c, "min_value", "<") for c in ("min_step", "min_value")},
              **{c: extreme(c, "max_value", ">") for c in ("max_step", "max_value")},
              **{c: latest(c) for c in ("last_step", "last_value")},
              **{c: earliest(c) for c in ("nan_step", "posinf_step", "neginf_step")}}
    assert set(update) == set(ROLLUP_COLUMNS)
    return (f"INSERT INTO metric_rollups AS t (run_id, key, bucket, {', '.join(ROLLUP_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * (3 + len(ROLLUP_COLUMNS)))}) "
            f"ON CONFLICT (run_id, key, bucket) DO UPDATE SET {', '.join(f'{c} = {e}' for c, e in update.items())}")


def summarise(rows: Iterable[Sequence]) -> dict[tuple[int, str, int], dict]:
    """(run_id, key, step, value, …) rows -> {(run_id, key, bucket): summary}; a value of None or NaN is a NaN.
    Written for speed: it runs on every flush, so the per-point work is done by C builtins (a stable sort and
    groupby into series, bisect, min, max, map, and a sort by step only for a series not already in step order),
    and a Python loop over points runs only in a bucket that holds a NaN or ±inf."""
    buckets: dict[tuple[int, str, int], dict] = {}
    # sorted by the key alone (a string: compared in C, no tuple built per row), then split by run if need be
    for key, group in groupby(sorted(rows, key=_key), _key):
        points = list(group)  # in write order: the sort is stable
        runs = set(map(_run, points))
        for run_id in runs:  # nearly always one
            _fold_series(buckets, run_id, key, points if len(runs) == 1 else [p for p in points if p[0] == run_id])
    return buckets


def _fold_series(buckets: dict[tuple[int, str, int], dict], run_id: int, key: str, points: list[Sequence]) -> None:
    """One series' points (in write order) summarised bucket by bucket into `buckets`."""
    steps = list(map(_step, points))
    if any(map(gt, steps, steps[1:])):  # out of order: sort, keeping the later write later among equal steps
        points = sorted(points, key=_step)
        steps.sort()
    start = 0
    while start < len(points):
        bucket = steps[start] // BUCKET_STEPS
        end = bisect_left(steps, (bucket + 1) * BUCKET_STEPS, start)
        buckets[run_id, key, bucket] = _summary(points[start:end])
        start = end


def _summary(points: list[Sequence]) -> dict:
    """One bucket's summary from its points in step order (the latest write last among equal steps)."""
    summary = _empty()
    summary["n"] = len(points)
    last = points[-1][3]
    summary["last_step"], summary["last_value"] = points[-1][2], None if last != last else last  # NaN as NULL
    values = list(map(_value, points))
    finite = points
    if None in values or not all(map(math.isfinite, values)):
        finite = [p for p in points if p[3] is not None and p[3] - p[3] == 0]  # x - x is NaN for NaN and ±inf
        for step, value in zip(map(_step, points), values):
            kind: str | None = "nan_step"
            if value is not None and value == value:
                kind = None if value - value == 0 else "posinf_step" if value > 0 else "neginf_step"
            if kind and summary[kind] is None:  # points are in step order: the first is the earliest
                summary[kind] = step
    if finite:
        lowest, highest = min(finite, key=_value), max(finite, key=_value)
        summary["min_step"], summary["min_value"] = lowest[2], lowest[3]
        summary["max_step"], summary["max_value"] = highest[2], highest[3]
    return summary


_run, _key, _step, _value = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)


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
