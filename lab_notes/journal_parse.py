"""The journal's CommonMark parsers (markdown-it-py), linear in their input: each inline block is parsed with the
link, image and emphasis rules only where they can match and fit a budget of work a character."""

from __future__ import annotations

import re
from typing import Any

from markdown_it import MarkdownIt

# A link or image needs its label closed by `](…)` or `][…]` (or a defined reference): text without one is parsed
# with the link rules off. They are markdown-it-py's slow path (~10 µs a character on a run of unclosed `[`).
LINKABLE = re.compile(r"\]\([^()]*\)|\]\[[^\[\]]*\]")
SHORTCUT = re.compile(r"\[[^\[\]]+\]")


# What one inline block may cost. markdown-it-py scans from each `[` to its `]` (to the block's end when there is
# none, once per `[`), and pairs emphasis delimiters in up to quadratic time: a block whose brackets would cost more
# than LINK_BUDGET steps a character, or whose `*` and `_` more than EMPHASIS_BUDGET, is parsed with those rules
# off (its brackets and stars stay text). The real journal's blocks are all far inside (tests/lab_notes/
# test_journal_render.py); bench/journal_render.py shows the worst bodies at about the cost of prose.
LINK_BUDGET, EMPHASIS_BUDGET, SLACK, PAIR_COST = 1, 4, 64, 4
SPECIAL = re.compile(r"[\[\]()!<>`*_\\&]")


def _link_cost(content: str) -> int:
    """Special characters markdown-it-py steps over finding every `[`'s label end (the block's end for an
    unclosed one), bracket pairs matched with a stack in one pass, and PAIR_COST for each pair's tokens (a block
    that is all links, `[a][a][a]…`, costs four times prose without it)."""
    opened: list[int] = []
    cost = count = 0
    for count, found in enumerate(SPECIAL.finditer(content), 1):
        if found.group() == "[":
            opened.append(count)
        elif found.group() == "]" and opened:
            cost += count - opened.pop() + PAIR_COST
    return cost + sum(count - start for start in opened)


def _rules_within_budget(content: str) -> tuple[bool, bool]:
    """(links, emphasis): whether each kind of rule may run on this inline block within the budget."""
    unclosed = content.count("[") - content.count("]")  # at least this many `[` scan on to the block's end
    if unclosed * (unclosed - 1) // 2 > LINK_BUDGET * len(content) + SLACK:
        links = False  # a lower bound of _link_cost is already over: no need to count it
    else:
        links = "[" not in content or _link_cost(content) <= LINK_BUDGET * len(content) + SLACK
    stars = content.count("*") + content.count("_")
    return links, stars * stars <= EMPHASIS_BUDGET * len(content) + SLACK


def parse_inline(state: Any, token: Any) -> None:
    """Parse one inline block, choosing whether the link, image and emphasis rules can match at all and fit the
    budget."""
    token.children = token.children or []
    links, emphasis = _rules_within_budget(token.content)
    references = bool(state.env.get("references"))
    links = links and bool(LINKABLE.search(token.content) or (references and SHORTCUT.search(token.content)))
    md = state.md if links and emphasis else VARIANTS[links, emphasis]
    md.inline.parse(token.content, md, state.env, token.children)


def _inline_with_links_only_where_possible(state: Any) -> None:
    """markdown-it's core `inline` rule, through parse_inline for each inline block."""
    for token in state.tokens:
        if token.type == "inline":
            parse_inline(state, token)


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True})  # HTML kept as tokens, so <img> figures are found
    md.core.ruler.at("inline", _inline_with_links_only_where_possible)
    return md


def _text_up_to(meaningful: str) -> Any:
    """An inline text rule that stops only at the characters some enabled rule still reads: with links or emphasis
    off, a run of `[` or `*` is one piece of text, not a character at a time through every rule."""
    stop = re.compile("[" + re.escape(meaningful) + "]")

    def text(state: Any, silent: bool) -> bool:
        found = stop.search(state.src, state.pos, state.posMax)
        end = found.start() if found else state.posMax
        if end == state.pos:
            return False
        if not silent:
            state.append_pending(state.src[state.pos:end])  # `pending +=` would copy it all each time
        state.pos = end
        return True

    return text


def _without(*rules: str) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).disable(list(rules))
    meaningful = "\n\\`<&" + ("" if "link" in rules else "[]!") + ("" if "emphasis" in rules else "*_")
    md.inline.ruler.before("text", "text_up_to", _text_up_to(meaningful))
    return md


VARIANTS = {(False, True): _without("link", "image"), (True, False): _without("emphasis"),
            (False, False): _without("link", "image", "emphasis")}
BLOCKS = MarkdownIt("commonmark", {"html": True}).disable("inline")  # headings need no inline parsing
PARSER = _parser()
