"""The rollups the store keeps (folded in SQL by one upsert per flush) equal a brute-force summary of every point,
on SQLite and PostgreSQL, however the points were split into batches."""

from __future__ import annotations

import math
import random

from sqlalchemy import select

from lab_notes.schema import MetricRollupRow
from lab_notes.series import BUCKET_STEPS, ROLLUP_COLUMNS, summarise


def stored_rollups(notebook, run: int) -> dict:
    with notebook._read() as session:
        return {(r.run_id, r.key, r.bucket): {c: getattr(r, c) for c in ROLLUP_COLUMNS}
                for r in session.scalars(select(MetricRollupRow).where(MetricRollupRow.run_id == run))}


def test_rollups_folded_batch_by_batch_in_sql_equal_one_summary_of_all_points(notebook):
    run = notebook.create_run({}, name="rollups")
    rng = random.Random(5)
    specials = [math.nan, math.inf, -math.inf]
    rows = [(run, key, step, rng.choice(specials + [rng.uniform(-5, 5) for _ in range(30)]), 0.0)
            for key in ("a", "b") for step in range(2 * BUCKET_STEPS + 40)]
    rows += [(run, "a", 7, 123.0, 0.0), (run, "a", 7, -123.0, 0.0)]  # a step written again: the latest is last
    rng.shuffle(rows)
    for start in range(0, len(rows), 700):  # batches that cut buckets and series anywhere
        notebook.log_batch(rows[start:start + 700])
    as_stored = [(r, k, s, None if math.isnan(v) else v) for r, k, s, v, _ in rows]
    expected = summarise(as_stored)
    stored = stored_rollups(notebook, run)
    assert stored.keys() == expected.keys()
    for where, summary in expected.items():
        got = stored[where]
        for column in ROLLUP_COLUMNS:
            if column in ("min_step", "max_step"):  # equal extreme values at two steps: either step is right
                value = "min_value" if column == "min_step" else "max_value"
                at = {s for r, k, s, v in as_stored if (r, k, s // BUCKET_STEPS) == where and v == got[value]}
                assert got[column] in at, (where, column)
            else:
                assert got[column] == summary[column], (where, column, got[column], summary[column])
    assert notebook.latest_metrics(run)["a"][0] == 2 * BUCKET_STEPS + 39


def test_log_batch_keeps_nan_and_infinities_exact_whether_values_are_floats_or_not(notebook):
    """Plain floats take the fast path (written as given, NaN stored as NULL by the database); anything else (an
    int, a numpy float32) is converted first. Both read back the same, and so do their rollups."""
    import numpy as np

    values = [1.5, math.nan, math.inf, -math.inf, -2.25]
    for key, kind in (("floats", float), ("mixed", lambda v: np.float32(v) if math.isfinite(v) else v)):
        run = notebook.create_run({}, name=key)
        notebook.log_batch([(run, "x", step, kind(v), 0.0) for step, v in enumerate(values)] +
                           [(run, "x", 5, 3.0 if key == "floats" else 3, 0.0)])
        steps, got = notebook.metric_history(run, "x")
        assert steps.tolist() == list(range(6))
        assert np.array_equal(got, np.array(values + [3.0]), equal_nan=True), (key, got)
        (summary,) = stored_rollups(notebook, run).values()
        assert (summary["nan_step"], summary["posinf_step"], summary["neginf_step"]) == (1, 2, 3)
        assert (summary["min_value"], summary["max_value"], summary["last_value"]) == (-2.25, 3.0, 3.0)
