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
