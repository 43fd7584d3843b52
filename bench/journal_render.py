"""Rendering and importing journal bodies (issue #28): the six 1 MB bodies that once took minutes, and ordinary
Markdown packed tight (every line a block), each against the same length of the real journal's prose, measured in
this run: body_segments for the page's render, parse_journal_text of a one-entry journal for the import. Sizes:
1 MB (the worst a note holds in practice: the cap is 2 MB) and 20 kB (a long real note).

Times are CPU seconds of this process (time.process_time: on a shared machine wall-clock time counts other people's
work), taken in rounds; each round measures every body and the prose once, so a ratio compares like with like.
A body's ratio is the median of its rounds' ratios; the spread is their lowest and highest.

    .venv/bin/python bench/journal_render.py [--sizes 1000000,20000] [--rounds 3]
Required: every body's render and import ratio <= 2 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_notes.journal import parse_journal_text  # noqa: E402
from lab_notes.journal_render import body_segments  # noqa: E402
from tests.journal_bodies import dense_bodies, prose, slow_bodies  # noqa: E402

PROSE = "prose (the real journal, repeated)"
LIMIT = 2.0


def cpu_seconds(work: Callable[[], object], times: int) -> float:
    """CPU seconds of one call, over `times` calls (a 20 kB body takes milliseconds: one call is timer noise)."""
    started = time.process_time()
    for _ in range(times):
        work()
    return (time.process_time() - started) / times


def render_and_import(body: str, times: int) -> tuple[float, float]:
    journal = "### 2022.12.08\n" + body
    return (cpu_seconds(lambda: body_segments(body), times),
            cpu_seconds(lambda: parse_journal_text(journal, "bench.md", pictures={}), times))


def measure(size: int, rounds: int) -> list[tuple[str, list[float], list[float], list[float], list[float]]]:
    """Per body: render and import seconds of each round, and their ratios to the same round's prose."""
    bodies = {PROSE: prose(size), **slow_bodies(size), **dense_bodies(size)}
    times = max(1, 200_000 // size)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in bodies}
    for _ in range(rounds):
        for name, body in bodies.items():
            seconds[name].append(render_and_import(body, times))
    rows = []
    for name in bodies:
        render = [r for r, _ in seconds[name]]
        imported = [i for _, i in seconds[name]]
        rows.append((name, render, imported,
                     [r / p for r, (p, _) in zip(render, seconds[PROSE])],
                     [i / p for i, (_, p) in zip(imported, seconds[PROSE])]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,20000", help="body lengths in characters, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"\n{'body (' + format(size, ',') + ' characters)':46} {'render s':>9} {'ratio':>6} {'spread':>11} "
              f"{'import s':>9} {'ratio':>6} {'spread':>11}   ({args.rounds} rounds, medians)", flush=True)
        for name, render, imported, render_ratios, import_ratios in measure(size, args.rounds):
            ratios = statistics.median(render_ratios), statistics.median(import_ratios)
            worst = max(worst, *ratios)
            print(f"{name:46} {statistics.median(render):9.4f} {ratios[0]:6.2f} "
                  f"{min(render_ratios):5.2f}-{max(render_ratios):<5.2f} {statistics.median(imported):9.4f} "
                  f"{ratios[1]:6.2f} {min(import_ratios):5.2f}-{max(import_ratios):<5.2f}"
                  f"{'   OVER' if max(ratios) > LIMIT else ''}", flush=True)
    ok = worst <= LIMIT
    print(f"\nworst ratio {worst:.2f} (required <= {LIMIT})\n{'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
