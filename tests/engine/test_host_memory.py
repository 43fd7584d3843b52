"""A training process keeps the host memory its steps free (`engine/host_memory.py`, issue 29): under glibc's own
rules the engine's CPU step at bench size handed megabytes back to the system and faulted them in again, 270-420
page faults a step against 7-38 for the bare loop beside it (`bench/train_overhead.py` prints both).

Which step faults under glibc's own rules depends on how the loop's threads interleave, so the test asks the
question glibc answers the same way every time: is a block freed by one step there for the next without faulting
in again? A 40 MB tensor is made and dropped six times in a fresh process: glibc by its own rules maps every
block of 32 MiB or more afresh and unmaps it on free, so each one faults its pages in again; after `train()` has set
the process's policy, the heap keeps what is freed and, from the third block on, every block reuses it.

Why the third and not the second: torch asks for 64-byte-aligned memory, so glibc carves each block out of a
request a little larger than the block and frees the slack beside it, where a small allocation may take it. The
first block's freed memory can then be those few bytes short of the next aligned request, which comes from the top
of the heap instead; from then on the two alternate, and nothing faults (seen here on glibc 2.36: 4,882 and 4,883
faults, then 0, 0, 0, 0; a machine where the slack stays free reuses the first block already)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = 40_000_000 // 4096

FAULTS_PER_BLOCK = """
import json, resource, sys
import torch

if sys.argv[1] == "after train()":
    from engine.config import with_overrides
    from engine.presets import PRESETS
    from engine.sinks import NullSink
    from engine.train import train
    from tests.helpers import tiny

    train(tiny(PRESETS["tiny"], "schedule.episodes=2", "schedule.final_eval_episodes=0",
               "runtime.system_metrics_seconds=0"), NullSink())

faults = []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    block = torch.ones(10_000_000)  # 40 MB, every page written
    faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    del block
print(json.dumps(faults))
"""


def faults_per_block(how: str) -> list[int]:
    done = subprocess.run([sys.executable, "-c", FAULTS_PER_BLOCK, how], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="not glibc: the engine leaves another allocator as is")
def test_a_training_process_reuses_the_memory_it_freed_instead_of_faulting_it_in_again():
    plain, trained = faults_per_block("plain"), faults_per_block("after train()")
    assert all(faults >= PAGES * 0.25 for faults in plain), f"glibc's own rules: {plain} faults (of {PAGES} pages)"
    assert all(faults <= PAGES * 0.01 for faults in trained[2:]), (
        f"after train(): {trained} faults a 40 MB block (of {PAGES} pages): freed memory went back to the system")
