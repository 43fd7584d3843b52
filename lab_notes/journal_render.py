"""A note's body for display: CommonMark rendered to HTML with every raw HTML of the note escaped and every figure
(an image in any form) taken out for the page to draw itself, so the HTML never holds an <img> or any address
a browser would fetch. Within the parsers' budgets (lab_notes.journal_parse for links and emphasis in a block,
lab_notes.journal_budget for the whole body): a body of any shape renders in at most about twice the time of the
same length of prose; past the body's budget its rest is shown as escaped plain text. The HTML has no blank or whitespace-only line, so a Markdown reader
given it as one raw-HTML block cannot end that block early and read the rest as Markdown.
"""

from __future__ import annotations

import html
import re
from typing import Any, Sequence

from lab_notes.journal_text import IMG_TAG, FigureRef, _alt_text, html_figures
from lab_notes.journal_budget import budget_for, keep_within_budget, normalized, rest_as_text
from lab_notes.journal_parse import _parser

PREVIEW_CHARS = 100_000  # the editor previews this much of a body; a longer one says how much more there is

RENDERER = _parser()
RENDERER.enable("table")  # journal drafts give their numbers as GFM tables; display only (import never needs them)
keep_within_budget(RENDERER)


def _figure_marker(env: dict[str, Any], ref: FigureRef) -> str:
    env["figures"].append(ref)
    return f"\x00{len(env['figures']) - 1}\x00"  # markdown-it turns any NUL of the input into U+FFFD: no clash


def _render_image(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: dict[str, Any]) -> str:
    token = tokens[idx]
    return _figure_marker(env, FigureRef(str(token.attrGet("src") or ""), _alt_text(token)))


def _render_raw_html(self: Any, tokens: Sequence[Any], idx: int, options: Any, env: dict[str, Any]) -> str:
    """Raw HTML is shown as text, never run; its <img> tags are figures like any other."""
    content, out, cursor = tokens[idx].content, [], 0
    for tag in IMG_TAG.finditer(content):
        refs = html_figures(tag.group(0))
        if refs:
            out.append(html.escape(content[cursor:tag.start()]))
            out += [_figure_marker(env, ref) for ref in refs]
            cursor = tag.end()
    out.append(html.escape(content[cursor:]))
    text = "".join(out)
    return text if tokens[idx].type == "html_inline" else f"<p>{text}</p>\n"


RENDERER.add_render_rule("image", _render_image)
RENDERER.add_render_rule("html_inline", _render_raw_html)
RENDERER.add_render_rule("html_block", _render_raw_html)


def body_segments(body: str) -> list[str | FigureRef]:
    """A note's body for display, in order: HTML strings of prose (every raw HTML of the note escaped, so safe to
    show as HTML) and the figures between them, which the page draws itself (a web image only as a link)."""
    text = normalized(body)
    budget, parsed = budget_for(text)
    env: dict[str, Any] = {"figures": [], "budget": budget}
    tokens = RENDERER.parse(parsed, env)
    rendered = RENDERER.renderer.render(tokens, RENDERER.options, env) + rest_as_text(text, budget)
    # Line breaks become character references: the HTML is then one line (a <pre> still shows them as breaks).
    rendered = rendered.replace("\r", "&#13;").replace("\n", "&#10;")
    parts = re.split("\x00(\\d+)\x00", rendered)
    segments: list[str | FigureRef] = []
    for index, part in enumerate(parts):
        if index % 2:
            segments.append(env["figures"][int(part)])
        elif part.strip():
            segments.append(part)
    return segments


def preview_segments(body: str) -> tuple[list[str | FigureRef], int]:
    """The editor's preview: the segments of the body's first PREVIEW_CHARS characters, and how many characters
    past them were left out (0: the whole body)."""
    return body_segments(body[:PREVIEW_CHARS]), max(0, len(body) - PREVIEW_CHARS)
