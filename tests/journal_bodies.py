"""Bodies that once made the journal slow (issue #28), and prose of the same length to measure them against: shared
by bench/journal_render.py, the hostile tests and the browser test."""

from __future__ import annotations

from pathlib import Path

REAL = Path(__file__).resolve().parent / "lab_notes" / "original-journal.md"


def prose(size: int) -> str:
    """`size` characters of the real journal's prose (its headings and figure tags left out), repeated."""
    lines = [line for line in REAL.read_text(encoding="utf-8").splitlines(keepends=True)
             if not line.startswith("#") and "<img" not in line]
    unit = "".join(lines)
    return (unit * (size // len(unit) + 1))[:size]


def repeated(unit: str, size: int, tail: str = "") -> str:
    return unit * ((size - len(tail)) // len(unit)) + tail


def slow_bodies(size: int) -> dict[str, str]:
    """The issue's six bodies of `size` characters, by the name the issue gives them."""
    return {"`![` repeated then `](x)`": repeated("![", size, "](x)"),
            "`**a` repeated": repeated("**a", size),
            "`[` repeated then `](x)`": repeated("[", size, "](x)"),
            "`*a` repeated": repeated("*a", size),
            "`_a` repeated": repeated("_a", size),
            "`[a]` repeated with a reference definition": "[a]: x\n\n" + repeated("[a]", size - 8)}


def dense_bodies(size: int) -> dict[str, str]:
    """Ordinary Markdown packed tight, `size` characters each: every line a block of its own (or a paragraph line,
    or a few inline spans), which markdown-it builds tokens for one by one."""
    return {"`- a` lines": repeated("- a\n", size),
            "`a` paragraphs (`a` and a blank line)": repeated("a\n\n", size),
            "`1. a` lines": repeated("1. a\n", size),
            "`> a` lines": repeated("> a\n", size),
            "`# a` lines": repeated("# a\n", size),
            "`| a | b |` table rows": "| a | b |\n|---|---|\n" + repeated("| a | b |\n", size - 20),
            "`|a|a|…|` 40-column table rows": "|a" * 40 + "|\n" + "|-" * 40 + "|\n" + repeated("|a" * 40 + "|\n", size - 200),
            "short fenced code blocks": repeated("```\nx\n```\n", size),
            "`#` lines (empty headings)": repeated("#\n", size),
            "`1. 1. 1. 1. 1. a` nested lists": repeated("1. 1. 1. 1. 1. a\n", size),
            "`a` lines (one paragraph)": repeated("a\n", size),
            "`*a* _b_ `c`` spans": repeated("*a* _b_ `c`\n\n", size)}
