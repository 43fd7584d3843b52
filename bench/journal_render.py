"""Rendering and importing journal bodies that once took minutes (issue #28): each of six 1 MB bodies against 1 MB
of the real journal's prose, measured in this run (body_segments for the page's render; parse_journal_text of a
one-entry journal for the import).

    .venv/bin/python bench/journal_render.py [--size 1000000] [--repeats 3]
Required: every body's render and import within 2 x the prose's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab_notes.journal import parse_journal_text  # noqa: E402
from lab_notes.journal_render import body_segments  # noqa: E402
from tests.journal_bodies import prose, slow_bodies  # noqa: E402


def best_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def render_and_import(body: str, repeats: int) -> tuple[float, float]:
    journal = "### 2022.12.08\n" + body
    return (best_seconds(lambda: body_segments(body), repeats),
            best_seconds(lambda: parse_journal_text(journal, "bench.md", pictures={}), repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    render_prose, import_prose = render_and_import(prose(args.size), args.repeats)
    print(f"{'body (' + format(args.size, ',') + ' characters)':48} {'render s':>9} {'ratio':>6} {'import s':>9} "
          f"{'ratio':>6}")
    print(f"{'prose (the real journal, repeated)':48} {render_prose:9.2f} {1:6.2f} {import_prose:9.2f} {1:6.2f}")
    worst = 0.0
    for name, body in slow_bodies(args.size).items():
        render, imported = render_and_import(body, args.repeats)
        ratios = render / render_prose, imported / import_prose
        worst = max(worst, *ratios)
        print(f"{name:48} {render:9.2f} {ratios[0]:6.2f} {imported:9.2f} {ratios[1]:6.2f}")
    ok = worst <= 2.0
    print(f"worst ratio {worst:.2f} (required <= 2)")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
