"""Hostile names shared by the page tests and the browser test: each one, if a page read it as HTML or Markdown,
would run script or fetch from a host that is not the app's (127.0.0.1 port 9, the discard port: nothing there
answers, and a request to it is easy to tell from the app's own)."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

from app.literal import WORD_JOINER

FOREIGN = "127.0.0.1:9"
SCRIPT_NAME = '<iframe srcdoc="<script>window.parent.PWNED=1</script>"></iframe>'
IMG_TAG_NAME = f"<img src=http://{FOREIGN}/tag.png>"
MARKDOWN_IMAGE_NAME = f"![](http://{FOREIGN}/markdown.png)"
BOLD_AND_IMAGE_NAME = f"**bold** ![](http://{FOREIGN}/bold.png)"
NAMES = (SCRIPT_NAME, IMG_TAG_NAME, MARKDOWN_IMAGE_NAME, BOLD_AND_IMAGE_NAME)
# Streamlit's own syntax: an icon, a coloured directive, maths, strikethrough (shown as typed, never as these)
STREAMLIT_SYNTAX_NAME = ":material/home: :red[red] $x^2$ ~~struck~~ :smile:"
METRIC_KEY = f"probe/<img src=http://{FOREIGN}/key.png>"  # a key a tracked script logged
TOKENS = ("PWNED", "127.0.0.1")  # a string carrying any of these carries a hostile name

# The worst case for a Markdown body: a CommonMark renderer that passes raw HTML through (Streamlit's own does
# only with unsafe_allow_html), with GFM's strikethrough and tables.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["strikethrough", "table"])
_HARMLESS_TAGS = {"p", "br", "strong", "em", "code", "a"}


def carries_a_name(text: str) -> bool:
    return any(token in text for token in TOKENS)


def rendered(markdown: str) -> str:
    return _MARKDOWN.render(markdown)


def markup_in(markdown: str) -> list[str]:
    """What in `markdown`, rendered, is more than text: a tag other than paragraphs, breaks, emphasis and code,
    or a link to the foreign host."""
    out = rendered(markdown)
    tags = [t for t in re.findall(r"<([a-zA-Z][a-zA-Z0-9]*)", out) if t not in _HARMLESS_TAGS]
    links = [h for h in re.findall(r'href="([^"]*)"', out) if carries_a_name(h)]
    return tags + links


def shown_text(markdown: str) -> str:
    """The characters a reader sees for `markdown`, tags dropped (line breaks as spaces, word joiners unseen)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", rendered(markdown))).replace(WORD_JOINER, "").split())


def reads_as(markdown: str, name: str) -> bool:
    """Whether `name`'s characters are among those a reader sees for `markdown`."""
    return " ".join(name.split()) in shown_text(markdown)
