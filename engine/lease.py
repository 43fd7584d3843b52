"""How an attempt's own process ends when the run is no longer its own (a preset run's process, a script run's
supervisor): at once, exit code 71, writing nothing more. Except when this process itself gave the run away: a
Slurm job at its time limit hands the run to the next attempt and then waits for Slurm to requeue it, and its
heartbeat sees the lost lease within 2 s, often before `scontrol requeue` has answered. Exiting then ended the job
FAILED instead of requeued, and the run with it."""

from __future__ import annotations

import os
import threading
from typing import Callable

from engine.console import print_flushed

ORPHAN_EXIT_CODE = 70  # the worker says "its worker died"
LEASE_LOST_EXIT_CODE = 71

_handing_over = threading.Event()


def hand_over_begins() -> None:
    """This process is about to give its run to a new attempt: the lease it then loses is expected, and the
    process lives on until whatever requeues it (or fails to) ends it."""
    _handing_over.set()


def hand_over_refused() -> None:
    """The run was not this attempt's to give (stopped, reaped, deleted): a lost lease ends the process again."""
    _handing_over.clear()


def end_as_lease_lost(saying: str, before: Callable[[], None] = lambda: None) -> None:
    """Print `saying`, call `before`, and end this process at once (no atexit flush, no checkpoint, whatever the
    main thread is doing); unless it is handing its run over, when the lost lease is its own doing: nothing
    happens, and the heartbeat that noticed stops."""
    if _handing_over.is_set():
        return
    print_flushed(saying)
    before()
    os._exit(LEASE_LOST_EXIT_CODE)
