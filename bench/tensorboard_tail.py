"""Live TensorBoard tailing under load: a SummaryWriter process writes 1,000 scalars/s (flushing its file every
0.1 s) while the script run's tailer (`engine.tensorboard_feed.TensorBoardFeed.poll` every TICK_SECONDS, the loop a
script run's process runs, writing into a SQLite notebook) follows its logdir in a process of its own.

Measured per round, in this run:
- how far the notebook is behind the file (the tailer started and waiting before the writer): every 50 ms, the
  newest value in the file (read here with the same reader) less the newest stored value, each value being the
  writer's own clock when it wrote it; median, 95th percentile and max; and how far behind the writer's clock;
- the tailer's CPU time over wall time (its share of one core), against the writer's own share as the baseline.

    .venv/bin/python bench/tensorboard_tail.py [--seconds 10] [--rounds 3] [--rate 1000]
Goal: at most 2 s behind, at most 10 % of a core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.tensorboard_tail import LogdirTail  # noqa: E402
from lab_notes import Notebook  # noqa: E402
from lab_notes.imported_runs import start_imported_run  # noqa: E402

WRITER = """
import sys, time, resource
from torch.utils.tensorboard import SummaryWriter
logdir, start, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
writer = SummaryWriter(logdir, max_queue=1000, flush_secs=1)
cpu0, step, flushed = time.process_time(), 0, time.time()
began = time.time()
while time.time() - began < seconds:
    due = began + step / rate
    if due > time.time():
        time.sleep(due - time.time())
    writer.add_scalar("written_at", time.time() - start, step)
    step += 1
    if time.time() - flushed >= 0.1:
        writer.flush()
        flushed = time.time()
writer.close()
print(f"WRITER {step} {time.process_time() - cpu0} {time.time() - began}", flush=True)
"""

TAILER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from engine.script_runs import TICK_SECONDS
from engine.tensorboard_feed import TensorBoardFeed
from lab_notes import Attempt, Notebook
url, run_id, number, token, logdir, done = sys.argv[2:8]
notebook = Notebook(url)
feed = TensorBoardFeed(notebook, Attempt(int(run_id), int(number), token), __import__("pathlib").Path(logdir))
print("READY", flush=True)  # imports done: the bench starts the writer now
cpu0, began = time.process_time(), time.time()
while not __import__("os").path.exists(done):  # until the bench says the writer has ended
    feed.poll()
    time.sleep(TICK_SECONDS)
feed.poll()
notebook.flush()
print(f"TAILER {time.process_time() - cpu0} {time.time() - began}", flush=True)
notebook.close()
"""


def one_round(folder: Path, seconds: float, rate: int) -> dict[str, float]:
    url = f"sqlite:///{folder / 'notebook.db'}"
    logdir = folder / "tensorboard"
    with Notebook(url) as notebook:
        attempt = start_imported_run(notebook, {"kind": "bench"}, name="bench", preset=None)
        tailer = subprocess.Popen([sys.executable, "-c", TAILER, str(ROOT), url, str(attempt.run_id),
                                   str(attempt.number), attempt.token, str(logdir), str(folder / "done")],
                                  stdout=subprocess.PIPE, text=True)
        assert tailer.stdout is not None and tailer.stdout.readline().strip() == "READY"
        start = time.time()
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(logdir), str(start), str(seconds), str(rate)],
                                  stdout=subprocess.PIPE, text=True)
        lags: list[float] = []
        behind: list[float] = []  # the file's newest value less the notebook's, at the same moment
        in_file, file_tail = None, LogdirTail(logdir)
        while writer.poll() is None:
            newest = notebook.latest_metrics(attempt.run_id).get("written_at")
            read = file_tail.poll().scalars
            in_file = read[-1][2] if read else in_file
            if newest is not None and in_file is not None:
                lags.append(time.time() - start - newest[1])
                behind.append(max(0.0, in_file - newest[1]))
            time.sleep(0.05)
        (folder / "done").touch()
        writer_out = writer.communicate()[0].split()
        tailer_out = tailer.communicate(timeout=60)[0].split()
        written = int(writer_out[writer_out.index("WRITER") + 1])
        stored = len(notebook.metric_history(attempt.run_id, "written_at")[0])
    w = writer_out.index("WRITER")
    t = tailer_out.index("TAILER")
    lags.sort()
    behind.sort()
    return {"written": written, "stored": stored, "rate": written / float(writer_out[w + 3]),
            "behind_median": statistics.median(behind), "behind_p95": behind[int(0.95 * (len(behind) - 1))],
            "behind_max": behind[-1],
            "lag_median": statistics.median(lags), "lag_p95": lags[int(0.95 * (len(lags) - 1))], "lag_max": lags[-1],
            "tailer_core": float(tailer_out[t + 1]) / float(tailer_out[t + 2]),
            "writer_core": float(writer_out[w + 2]) / float(writer_out[w + 3])}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000, help="scalars written per second")
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            rounds.append(one_round(Path(folder), args.seconds, args.rate))
        print(f"round {index + 1}: {json.dumps({k: round(v, 4) for k, v in rounds[-1].items()})}", flush=True)
    print(f"\nwriter: {spread([r['rate'] for r in rounds])} scalars/s for {args.seconds:g} s; every point stored: "
          f"{all(r['stored'] == r['written'] for r in rounds)}")
    print(f"notebook behind the file, s: median {spread([r['behind_median'] for r in rounds])}; "
          f"p95 {spread([r['behind_p95'] for r in rounds])}; max {spread([r['behind_max'] for r in rounds])} "
          "(goal ≤ 2)")
    print(f"notebook behind the writer's clock (the file's own delay included), s: median "
          f"{spread([r['lag_median'] for r in rounds])}; p95 {spread([r['lag_p95'] for r in rounds])}; "
          f"max {spread([r['lag_max'] for r in rounds])}")
    tailer, writer = [r["tailer_core"] for r in rounds], [r["writer_core"] for r in rounds]
    print(f"tailer CPU, share of one core: {spread(tailer)} (goal ≤ 0.10); baseline, the writer's own: "
          f"{spread(writer)}; ratio tailer/writer {spread([t / w for t, w in zip(tailer, writer)])}")


if __name__ == "__main__":
    main()
