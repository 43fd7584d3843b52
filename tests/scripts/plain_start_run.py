"""A researcher's own script with the tracking client, as the must-show runs it (directly, or launched through the
notebook's worker): a few steps of known metrics (a NaN and ±inf among them), an image, a note.

    LAB_NOTEBOOK_URL=sqlite:///notebook.db python tests/scripts/plain_start_run.py [--steps N] [--pause S]
        [--record what-i-logged.json]

It prints `run <id>` once the run has started; with --record it writes every point it logged (key -> [[step,
value], ...], NaN as NaN) there when it ends, for a test to compare with the notebook."""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

import lab_notes


def value_at(step: int) -> dict[str, float]:
    """What step `step` logs: a falling loss, an accuracy, and non-finite values at fixed steps."""
    values = {"loss": 1.0 / (step + 1), "acc/heldout": min(1.0, step / 20)}
    if step == 3:
        values["loss"] = math.nan
    if step == 4:
        values["grad_norm"] = math.inf
    if step == 5:
        values["grad_norm"] = -math.inf
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between steps")
    parser.add_argument("--record", help="write what was logged here, as JSON")
    parser.add_argument("--name", default="plain start_run script")
    args = parser.parse_args()
    logged: dict[str, list[list[float]]] = {}
    with lab_notes.start_run(name=args.name, config={"steps": args.steps, "lr": 1e-3}) as run:
        print(f"run {run.id}", flush=True)
        for step in range(args.steps):
            values = value_at(step)
            run.log(values, step=step)
            for key, value in values.items():
                logged.setdefault(key, []).append([step, value])
            if step == 2:
                gradient = np.linspace(0.0, 1.0, 16 * 16, dtype=np.float32).reshape(16, 16)
                run.log_image("reconstruction", gradient, step=step)
            if args.pause:
                time.sleep(args.pause)
        run.note(f"Run {run.id}: the loss fell as 1/(step+1); step 3 was NaN on purpose.")
    if args.record:
        with open(args.record, "w") as record:
            json.dump(logged, record)
    if os.environ.get("EXPECTED_METRICS"):  # launched by tests/engine/test_script_runs.py: its {key: {step: value}}
        with open(os.environ["EXPECTED_METRICS"], "w") as out:
            json.dump({key: {str(step): value for step, value in points} for key, points in logged.items()}, out)


if __name__ == "__main__":
    main()
