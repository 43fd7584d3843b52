"""The older module name of `lab_notes.notebook_sink`, kept only because engine/worker.py still imports
`HEARTBEAT_SECONDS` and `patiently` from here (engine/sinks.py is the engine's own, unrelated module)."""

from lab_notes.notebook_sink import HEARTBEAT_SECONDS, NotebookSink, patiently, retry_while_unreachable

__all__ = ["HEARTBEAT_SECONDS", "NotebookSink", "patiently", "retry_while_unreachable"]
