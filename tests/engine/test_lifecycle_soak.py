"""The lifecycle chaos soak (bench/lifecycle_soak.py) at CI size: 25 s of kills, stops, resumes, deletes and
stale marks over 10 tiny runs and 2 workers, then every invariant checked. The full soak is the benchmark."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_soak_at_ci_size_finds_no_violation():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "lifecycle_soak.py"), "--seconds", "25", "--runs",
                          "10", "--drain", "60", "--pace", "0.45", "--seed", "8"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    report = out.stdout + out.stderr[-3000:]
    assert out.returncode == 0 and "violations: 0" in out.stdout, report
    counts = dict(part.rsplit(" ", 1) for part in out.stdout.split("actions: ")[1].splitlines()[0].split(", "))
    assert int(counts["submits"]) == 10
    assert sum(int(counts.get(k, 0)) for k in ("run kills", "worker kills", "stops", "resumes", "deletes",
                                                "marked stale")) >= 10, report  # the chaos really happened
