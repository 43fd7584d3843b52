"""`python -m engine journal draft RUN [--print]` and `python -m engine journal drafts`, as a person types them,
on SQLite and on PostgreSQL (each a process of its own: the slow lane)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.test_journal_drafts import ended_run, report
from tests.lab_notes.conftest import notebook, notebook_url  # noqa: F401 - the fixtures, on both databases

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def journal(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", "journal", *args, "--db", url], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={"LAB_JOURNAL_LANGUAGE": "en",
                                                                            "PATH": "/usr/bin:/bin"})


def test_draft_prints_the_markdown_and_regenerating_leaves_an_edited_draft_alone(notebook):
    run_id = ended_run(notebook, few_shot=report(0.6))
    out = journal(notebook.url, "draft", str(run_id), "--print")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"# tiny — run {run_id}\n\n## What was tried") and "0.600 ± 0.020" in out.stdout
    (note,) = notebook.waiting_drafts()
    notebook.update_note(note.id, body_markdown="a person's words")
    again = journal(notebook.url, "draft", str(run_id))
    assert again.returncode == 0 and again.stdout.startswith("note ") and f"— run {run_id}" in again.stdout
    assert notebook.get_note(note.id).body == "a person's words" and len(notebook.waiting_drafts()) == 2
    listed = journal(notebook.url, "drafts")
    assert listed.returncode == 0 and f"run {run_id} · edited" in listed.stdout and listed.stdout.count("\n") == 2


def test_bad_input_is_named_not_a_traceback(notebook):
    queued = notebook.create_run({}, name="waiting")
    for args, said in ((["draft", "999"], "no run 999"), (["draft", str(queued)], "only for a run that has ended")):
        out = journal(notebook.url, *args)
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr
    assert journal(notebook.url, "drafts").stdout == "no drafts wait\n"
