"""Server render time of the run page (AppTest, no browser) for a run with 1,000,000 points in each of 4
metrics, against the same page for a run with 1,000 points, measured in this run.

    .venv/bin/python bench/app_render.py [--points 1000000] [--repeats 3]
Required: large / small <= 2 and the large page under 1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEYS = ("loss/total", "loss/contrastive", "acc/prototype", "grad_norm")


def seed(notebook, name: str, points: int) -> int:
    run_id = notebook.create_run({}, name=name)
    rng = np.random.default_rng(0)
    for key in KEYS:
        values = np.cumsum(rng.normal(size=points)) / 100 + 5
        for start in range(0, points, 100_000):
            notebook.log_batch([(run_id, key, step, float(values[step]), 0.0)
                            for step in range(start, min(start + 100_000, points))])
    attempt = notebook.claim_next_run("bench")
    notebook.finish_attempt(attempt, "completed")
    return run_id


def render_seconds(run_id: int, repeats: int) -> float:
    """Median wall time of a fresh session rendering /run?run=ID (each a new AppTest: no session cache)."""
    from streamlit.testing.v1 import AppTest

    times = []
    for _ in range(repeats):
        app = AppTest.from_file(str(ROOT / "app" / "streamlit_app.py"), default_timeout=120)
        app.run()
        app.switch_page("app_pages/run.py")
        app.query_params["run"] = str(run_id)
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
        assert not app.exception, app.exception
        charts = [c for c in app.get("bidi_component") if c.proto.component_name == "lab_notebook.live_chart"]
        assert len(charts) == 3  # losses, accuracy, gradient norm
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["LAB_NOTEBOOK_URL"] = f"sqlite:///{folder}/notebook.db"
        os.environ["LAB_START_WORKER"] = "0"
        from lab_notes import Notebook

        with Notebook() as notebook:
            started = time.perf_counter()
            large = seed(notebook, "large", args.points)
            small = seed(notebook, "small", 1_000)
            print(f"seeded {len(KEYS)} x {args.points:,} points in {time.perf_counter() - started:.1f} s")
        render_seconds(small, 1)  # warm-up: imports and the first script compile are not the page's cost
        small_s = render_seconds(small, args.repeats)
        large_s = render_seconds(large, args.repeats)
    ratio = large_s / small_s
    print(f"run page, {len(KEYS)} x 1,000 points      : {small_s * 1000:7.0f} ms (median of {args.repeats})")
    print(f"run page, {len(KEYS)} x {args.points:,} points : {large_s * 1000:7.0f} ms (median of {args.repeats})")
    ok = ratio <= 2 and large_s < 1.0
    print(f"ratio large/small = {ratio:.2f} (required <= 2), large < 1 s: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
