"""Submit → first loss point in the notebook, through a real worker: the cold launcher (a fresh interpreter per
run, importing torch, timm and the engine each time) against the warm one (each run forked from a process that
imported them when the worker started). Median of N runs each, measured in this run, and the ratio.

    .venv/bin/python bench/first_point.py [--preset 2022-12-14-normalized-infonce-2d] [--repeats 5]
Goal: the warm launcher's first point within about a second here, so that Launch → a point on screen (the run
page redraws each second) stays under 2 s; tests/e2e measures that in the browser.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import with_overrides  # noqa: E402
from engine.presets import PRESETS, preset as preset_config  # noqa: E402
from lab_notes import Notebook  # noqa: E402
from tests.helpers import wait_for  # noqa: E402


def first_points(launcher: str, preset: str, repeats: int, folder: Path) -> list[float]:
    """Seconds from queueing a run to its first stored metric, for `repeats` runs one after the other."""
    url = f"sqlite:///{folder / f'{launcher}.db'}"
    config = with_overrides(preset_config(preset), ["schedule.episodes=30", "schedule.final_eval_episodes=0"])
    seconds = []
    with Notebook(url) as notebook:
        log = folder / f"worker-{launcher}.log"
        with open(log, "wb") as output:
            worker = subprocess.Popen([sys.executable, "-m", "engine", "worker", "--db", url, "--runs-dir",
                                       str(folder / f"runs-{launcher}"), "--launcher", launcher],
                                      cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            # as in the app, the worker has been up a while when someone presses Launch (its launcher warm)
            wait_for(lambda: notebook.live_workers(15.0), 60, "the worker to register")
            if launcher == "warm":
                wait_for(lambda: "warm launcher ready" in log.read_text(), 120, "the warm launcher")
            for i in range(repeats):
                queued = time.perf_counter()
                run_id = notebook.create_run(config.model_dump(mode="json"), name=f"{launcher} {i}", preset=preset)
                wait_for(lambda: notebook.metric_keys(run_id), 120, f"run {run_id}'s first point", every=0.005)
                seconds.append(time.perf_counter() - queued)
                wait_for(lambda: notebook.get_run(run_id).status in ("completed", "failed", "diverged", "stopped"),
                         300, f"run {run_id} to end")
                print(f"  {launcher} run {i + 1}: first point after {seconds[-1]:.2f} s "
                      f"({notebook.get_run(run_id).status})", flush=True)
        finally:
            worker.terminate()
            worker.wait(timeout=90)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="2022-12-14-normalized-infonce-2d", choices=sorted(PRESETS))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        cold = statistics.median(first_points("cold", args.preset, args.repeats, Path(folder)))
        warm = statistics.median(first_points("warm", args.preset, args.repeats, Path(folder)))
    print(f"preset {args.preset}, median of {args.repeats}: submit → first point cold {cold:.2f} s, "
          f"warm {warm:.2f} s; warm is {cold / warm:.1f}× faster (ratio warm/cold {warm / cold:.2f})")


if __name__ == "__main__":
    main()
