"""The engine's processes speak in lines on stdout: the worker's log, and each run's (which the worker copies)."""


def print_flushed(message: str) -> None:
    """One line to stdout, flushed now: a process killed a moment later must still have said it."""
    print(message, flush=True)
