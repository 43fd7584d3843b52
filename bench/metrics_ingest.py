"""Metric ingest into the notebook (SQLite), against raw `sqlite3.executemany` into an equivalent table, all
measured in this run on the same rows.

    .venv/bin/python bench/metrics_ingest.py [--points 200000]
Required: per-point log_metrics >= 100,000 points/s; batched (log_batch) >= 0.5 x raw executemany.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab_notes import Notebook  # noqa: E402

BATCH = 1000


def rows_for(run_id: int, points: int) -> list[tuple[int, str, int, float, float]]:
    return [(run_id, f"metric/{i % 4}", i // 4, float(i) * 0.5, 1.7e9 + i) for i in range(points)]


def raw_executemany(path: Path, rows: list) -> float:
    """The floor: sqlite3 alone, WAL + synchronous=NORMAL, the same index, the same batches."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, key VARCHAR(200) "
                       "NOT NULL, step INTEGER NOT NULL, value FLOAT, wall_time FLOAT NOT NULL)")
    connection.execute("CREATE INDEX ix ON metrics (run_id, key, step)")
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO metrics (run_id, key, step, value, wall_time) VALUES (?,?,?,?,?)",
                               rows[i:i + BATCH])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def notebook_batched(url: str, rows: list) -> float:
    with Notebook(url) as book:
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            book.log_batch(rows[i:i + BATCH])
        return len(rows) / (time.perf_counter() - started)


def notebook_per_point(url: str, rows: list) -> float:
    book = Notebook(url)
    started = time.perf_counter()
    for run_id, key, step, value, wall_time in rows:
        book.log_metrics(run_id, step, {key: value}, wall_time)
    book.close()  # the last points are on disk before the clock stops
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/notebook.db"
        with Notebook(url) as book:
            run_id = book.create_run({}, name="bench")
        rows = rows_for(run_id, args.points)
        raw = raw_executemany(Path(folder) / "raw.db", rows)
        batched = notebook_batched(url, rows)
        per_point = notebook_per_point(url, rows)
        with Notebook(url) as book:
            stored = sum(len(book.metric_history(run_id, f"metric/{k}")[0]) for k in range(4))
    print(f"{args.points:,} points, batches of {BATCH}")
    print(f"raw sqlite3.executemany : {raw:12,.0f} points/s")
    print(f"notebook log_batch      : {batched:12,.0f} points/s  ({batched / raw:.2f} x raw; required >= 0.5)")
    print(f"notebook log_metrics    : {per_point:12,.0f} points/s  (one call per point; required >= 100,000)")
    ok = batched >= 0.5 * raw and per_point >= 100_000 and stored == 2 * args.points
    print(f"stored {stored:,} points (expected {2 * args.points:,}): {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
