"""The Runs page with thousands of runs: render time with 10,000 runs against the same page with 100 (each run with
10 metric keys x 100 points), and the Compare page with 20 runs, measured in this run with Streamlit's AppTest
(the page's whole script: queries, table, widgets; no browser).

    .venv/bin/python bench/runs_page.py [--runs 10000] [--baseline 100] [--repeats 3]
Required: 10,000 runs < 1 s and <= 2 x the page with 100; compare with 20 runs < 1 s.
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

import streamlit as st  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.presets import PRESETS  # noqa: E402
from lab_notes import Notebook  # noqa: E402

APP = str(ROOT / "app" / "streamlit_app.py")
KEYS = ["loss/total", "loss/contrastive", "loss/disc", "acc/prototype", "acc/discriminator", "eval/acc/prototype",
        "grad_norm", "lr", "images_per_s", "feature_norm"]


def fill(url: str, runs: int) -> list[int]:
    config = PRESETS["2022-12-14-normalized-infonce-2d"].model_dump(mode="json")
    rng = np.random.default_rng(0)
    with Notebook(url) as notebook:
        ids = [notebook.create_run(config, name=f"run {i}", preset="2022-12-14-normalized-infonce-2d")
               for i in range(runs)]
        now = time.time()
        for first in range(0, len(ids), 100):  # one transaction per 100 runs (100,000 points)
            values = rng.random((100, 100, len(KEYS)))
            notebook.log_batch([(run_id, key, step + 1, float(values[r, step, k]), now)
                            for r, run_id in enumerate(ids[first:first + 100])
                            for step in range(100) for k, key in enumerate(KEYS)])
    return ids


def render_seconds(url: str, page: str, repeats: int, **query: str) -> float:
    os.environ.update(LAB_NOTEBOOK_URL=url, LAB_START_WORKER="0")
    st.cache_resource.clear()
    app = AppTest.from_file(APP, default_timeout=300)
    app.run()
    app.switch_page(f"app_pages/{page}.py")
    for key, value in query.items():
        app.query_params[key] = value
    app.run()  # the first render opens the notebook and warms the caches
    assert not app.exception, [e.value for e in app.exception]
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        app.run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small, large = f"sqlite:///{folder}/small.db", f"sqlite:///{folder}/large.db"
        started = time.perf_counter()
        fill(small, args.baseline)
        ids = fill(large, args.runs)
        print(f"filled {args.baseline} + {args.runs:,} runs x {len(KEYS)} keys x 100 points in "
              f"{time.perf_counter() - started:.0f} s")
        baseline = render_seconds(small, "runs", args.repeats)
        scaled = render_seconds(large, "runs", args.repeats)
        compare = render_seconds(large, "compare", args.repeats, runs=",".join(map(str, ids[:20])))
    ratio = scaled / baseline
    ok = scaled < 1.0 and ratio <= 2.0 and compare < 1.0
    print(f"Runs page: {args.baseline} runs {baseline * 1000:.0f} ms, {args.runs:,} runs {scaled * 1000:.0f} ms "
          f"(ratio {ratio:.2f}, required <= 2 and < 1 s)")
    print(f"Compare page, 20 runs of {args.runs:,}: {compare * 1000:.0f} ms (required < 1 s)")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
