"""Journal drafts: the dated entry the notebook writes itself when a run or a sweep ends (issue 25). Torch-free:
`facts` reads the notebook, `compose` and `sweep` write the Markdown from one phrase table per language
(`phrases`), `figures` draws the PNGs (matplotlib, Agg), `writer` saves them idempotently, and `drafter` runs the
writer on a thread of the worker's own, so drafting never delays its other runs."""

from engine.journal_drafts.writer import Written, catch_up, write_run_draft, write_sweep_draft

__all__ = ["Written", "catch_up", "write_run_draft", "write_sweep_draft"]
