"""What rendering one body may cost: a budget of markdown-it's work, in units, that grows with the body's length.

markdown-it-py's work is about the same for each token it builds and each line it reads (a few µs; a non-blank
line costs about two tokens, a blank line next to nothing), whatever the characters. Prose of the real journal
needs about 0.15 units a character; ordinary Markdown packed tight (`- a` on every line, nested lists, one-letter
paragraphs, `*a* _b_` spans) needs up to 2, so it once cost up to 20 times prose of the same length. A body is
rendered until it has spent UNITS_PER_CHAR units a character (plus SLACK_UNITS, so a short note, even 250 short
list items, is never cut); the rest of it, from the line where the budget ran out, is shown as escaped plain text
under a line that says so.
The real journal's entries are far inside the budget (tests/lab_notes/test_journal_render.py), and
bench/journal_render.py shows every body at most about twice the cost of prose.

Work is counted where it happens: a block rule run first at every block start (lines read so far, two units for
each non-blank one, plus block tokens built), and the core inline rule (each inline block's tokens); the lines a
parse may see are capped before it starts, so one long paragraph cannot overrun the budget either.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from markdown_it import MarkdownIt
from markdown_it.token import Token

from lab_notes.journal_parse import parse_inline

UNITS_PER_CHAR = 0.2
SLACK_UNITS = 2000
BLOCK_SHARE = 0.8  # the block rules may spend this much of the budget: the rest is left for inline blocks
LINE_UNITS = 2  # a non-blank line: read by the block rules, and a text and a line-break token inline
NEWLINES = re.compile(r"\r\n?")


@dataclass
class Budget:
    """One render's budget: `units` to spend, the count of non-blank lines before each line, each line's start
    (in characters), and the line where rendering stopped (None: it did not)."""

    units: int
    nonblank_before: Any  # numpy array, one more entry than lines
    line_starts: Any
    cut_line: int | None = None

    def lines_units(self, line: int) -> int:
        return LINE_UNITS * int(self.nonblank_before[line])

    def cut(self, line: int) -> None:
        self.cut_line = line if self.cut_line is None else min(self.cut_line, line)


def normalized(body: str) -> str:
    """The body as markdown-it reads it (its own `normalize` step, done first so lines can be counted)."""
    return NEWLINES.sub("\n", body).replace("\x00", "\ufffd")


def budget_for(text: str) -> tuple[Budget, str]:
    """The budget for a normalized body, and the part of it a parse may see (lines past what the budget could
    ever pay for are left out up front)."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    breaks = np.flatnonzero(codes == 10)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks, [len(codes)]))
    ink = np.concatenate(([0], np.cumsum((codes != 32) & (codes != 9) & (codes != 10), dtype=np.int64)))
    nonblank_before = np.concatenate(([0], np.cumsum(ink[ends] > ink[starts], dtype=np.int64)))
    budget = Budget(int(UNITS_PER_CHAR * len(text)) + SLACK_UNITS, nonblank_before, starts)
    # a non-blank line costs at least LINE_UNITS + 1 (its inline text): lines past what that allows are never parsed
    lines = int(np.searchsorted(nonblank_before, budget.units // (LINE_UNITS + 1), side="right")) - 1
    if lines < len(starts):
        budget.cut(lines)
        return budget, text[:int(starts[lines])]
    return budget, text


def _stop_when_spent(state: Any, start: int, end: int, silent: bool) -> bool:
    """A block rule run before all others: once the budget is spent it takes every line left, so the parse ends."""
    budget: Budget | None = state.env.get("budget")
    if silent or budget is None:
        return False
    if budget.cut_line is None or start < budget.cut_line:
        if budget.lines_units(start) + len(state.tokens) <= BLOCK_SHARE * budget.units:
            return False
        budget.cut(start)
    state.line = state.lineMax
    return True


def _closed(tokens: list[Token]) -> list[Token]:
    """`tokens` with a closing token for each block left open (the renderer writes their end tags)."""
    opened: list[Token] = []
    for token in tokens:
        if token.nesting == 1:
            opened.append(token)
        elif token.nesting == -1 and opened:
            opened.pop()
    return tokens + [Token(t.type.replace("_open", "_close"), t.tag, -1, markup=t.markup, hidden=t.hidden,
                           block=True) for t in reversed(opened)]


def _inline_within_budget(state: Any) -> None:
    """The core inline rule under the budget: inline blocks are parsed while units are left; from the first that
    finds none, the block tokens are dropped and the body's rest is left to the plain-text tail."""
    budget: Budget | None = state.env.get("budget")
    if budget is not None:
        read = budget.cut_line if budget.cut_line is not None else len(budget.line_starts)
        spent = len(state.tokens) + budget.lines_units(read)
    for index, token in enumerate(state.tokens):
        if token.type != "inline":
            continue
        if budget is None:
            parse_inline(state, token)
            continue
        if spent > budget.units and token.map is not None:
            budget.cut(token.map[0])
            state.tokens[:] = _closed(state.tokens[:max(0, index - 1)])
            return
        parse_inline(state, token)
        spent += len(token.children or [])


def _rows_within_budget(table_rule: Any) -> Any:
    """The table rule reads all of a table's rows in one call, past every budget check: give it only the rows
    the budget left can pay for (a line, and three tokens a column); the rows after them are left to the checks."""

    def table(state: Any, start: int, end: int, silent: bool) -> bool:
        budget: Budget | None = state.env.get("budget")
        if budget is not None and not silent:
            left = BLOCK_SHARE * budget.units - budget.lines_units(start) - len(state.tokens)
            delimiter_row = state.src[state.bMarks[start + 1]:state.eMarks[start + 1]] if start + 1 < end else ""
            row_units = LINE_UNITS + 2 + 3 * (delimiter_row.count("|") + 1)  # tr open/close, td open/inline/close
            end = min(end, start + max(2, int(left // row_units)))
        return bool(table_rule(state, start, end, silent))

    return table


def keep_within_budget(md: MarkdownIt) -> None:
    """Make `md` stop where an env's "budget" runs out (an env without one parses as before)."""
    md.block.ruler.before(md.block.ruler.__rules__[0].name, "stop_when_spent", _stop_when_spent)
    md.core.ruler.at("inline", _inline_within_budget)
    rules = {rule.name: rule for rule in md.block.ruler.__rules__}
    if "table" in rules:
        md.block.ruler.at("table", _rows_within_budget(rules["table"].fn), {"alt": rules["table"].alt})


def rest_as_text(text: str, budget: Budget) -> str:
    """HTML for the part of the body past the budget: a line saying so, and the text itself, escaped."""
    if budget.cut_line is None:
        return ""
    rest = text[int(budget.line_starts[budget.cut_line]):]
    return (f"<p><em>The rest of this note ({len(rest):,} characters) is shown as plain text: it holds more Markdown "
            f"than the page renders for a note of its length.</em></p><pre>{html.escape(rest)}</pre>")
