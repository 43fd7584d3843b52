"""Metric series helpers: non-finite values in and out of SQL, and shape-keeping downsampling."""

from __future__ import annotations

import math

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
