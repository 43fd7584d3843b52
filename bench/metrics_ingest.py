"""Metric ingest into the notebook (SQLite), against raw `sqlite3.executemany` of the same rows into the same
table (the notebook's own `metrics` layout: its columns, index and foreign key), all measured in this run,
round by round, so a noisy shared machine slows each alike.

    .venv/bin/python bench/metrics_ingest.py [--points 200000] [--rounds 5]
Required (medians over the rounds): batched (log_batch: one unfenced transaction through the same row writer
every flush uses) >= 0.8 x raw
executemany; per-point log_metrics >= 100,000 points/s. The per-point ratio to raw is printed too.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
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
    """The floor: sqlite3 alone, WAL + synchronous=NORMAL + foreign keys, the notebook's table, index and batches."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    connection.execute("INSERT INTO runs (id) VALUES (?)", (rows[0][0],))
    connection.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs (id) "
                       "ON DELETE CASCADE, key VARCHAR(200) NOT NULL, step INTEGER NOT NULL, value FLOAT, "
                       "wall_time FLOAT NOT NULL, attempt INTEGER)")
    connection.execute("CREATE INDEX ix ON metrics (run_id, key, step)")
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany("INSERT INTO metrics (run_id, key, step, value, wall_time, attempt) "
                               "VALUES (?,?,?,?,?,NULL)", rows[i:i + BATCH])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - started
    connection.close()
    return len(rows) / elapsed


def notebook_batched(url: str, rows: list) -> float:
    with Notebook(url) as notebook:
        started = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            notebook.log_batch(rows[i:i + BATCH])
        return len(rows) / (time.perf_counter() - started)


def notebook_per_point(url: str, rows: list) -> float:
    notebook = Notebook(url)
    started = time.perf_counter()
    for run_id, key, step, value, wall_time in rows:
        notebook.log_metrics(run_id, step, {key: value}, wall_time)
    notebook.close()  # the last points are on disk before the clock stops
    return len(rows) / (time.perf_counter() - started)


def one_round(folder: Path, points: int) -> tuple[float, float, float]:
    """(raw, batched, per point) points/s, each into a fresh database; the stored count checked."""
    folder.mkdir()
    urls = [f"sqlite:///{folder}/batched.db", f"sqlite:///{folder}/per-point.db"]
    runs = []
    for url in urls:
        with Notebook(url) as notebook:
            runs.append(notebook.create_run({}, name="bench"))
    raw = raw_executemany(folder / "raw.db", rows_for(runs[0], points))
    batched = notebook_batched(urls[0], rows_for(runs[0], points))
    per_point = notebook_per_point(urls[1], rows_for(runs[1], points))
    for url, run_id in zip(urls, runs):
        with Notebook(url) as notebook:
            stored = sum(len(notebook.metric_history(run_id, f"metric/{k}")[0]) for k in range(4))
        assert stored == points, f"{url}: stored {stored:,} of {points:,} points"
    return raw, batched, per_point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.points:,} points a round, batches of {BATCH}, {args.rounds} rounds")
    rounds = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(args.rounds):
            raw, batched, per_point = one_round(Path(folder) / str(round_), args.points)
            rounds.append((batched / raw, per_point / raw, per_point))
            print(f"round {round_ + 1}: raw {raw:10,.0f}  log_batch {batched:10,.0f} ({batched / raw:.2f} x)  "
                  f"log_metrics {per_point:10,.0f} ({per_point / raw:.2f} x) points/s")
    batched_ratio, per_point_ratio, per_point = (statistics.median(r[i] for r in rounds) for i in range(3))
    spread = max(r[0] for r in rounds) - min(r[0] for r in rounds)
    print(f"median log_batch / raw   = {batched_ratio:.2f} (spread {spread:.2f}; required >= 0.8)")
    print(f"median log_metrics / raw = {per_point_ratio:.2f} ({per_point:,.0f} points/s; required >= 100,000)")
    ok = batched_ratio >= 0.8 and per_point >= 100_000
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
