"""What a person typed (a run's or sweep's name, a metric key, a tag, an owner, a host), made to show as exactly
the characters they typed wherever Streamlit or Plotly would read it as markup.

Streamlit reads Markdown in `st.markdown`, `st.title`, `st.caption`, alerts, toasts, image captions, widget labels
and help tooltips: a run named `![](http://host/x.png)` would make every reader's browser fetch that image, and
`**x**` would show bold. Plotly reads a few HTML tags (`<a href>`, `<b>`, `<br>`, …) and entities in titles,
legends and axis labels. Every page passes such text through one of these before it reaches either; nothing a
person typed is ever put into `unsafe_allow_html`.
"""

from __future__ import annotations

import html
import re

# What starts Markdown, HTML or Streamlit's extensions anywhere in a line: emphasis, code, links and images, HTML
# and entities, strikethrough, maths, directives (`:red[…]`), tables, and the backslash itself. CommonMark makes
# each literal after a backslash (and its extensions honour that escape too).
_INLINE = re.compile(r"([\\`*\[\]<>&~$:|!])")
# `_` opens or closes emphasis only beside a non-alphanumeric character: `feature_dim` stays as it reads.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What starts a block at the beginning of a line: a heading, quote, list item, setext underline, numbered item.
_LINE_START = re.compile(r"^([ \t]*)([#>+\-=]|\d+[.)])", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # everything but tab and newline: shown as a space
# Streamlit swaps `:material/name:` for an icon in the text it shows, after Markdown's escapes are resolved: an
# invisible word joiner inside keeps the characters on screen.
_ICON = re.compile(r"(:material)(/)", re.IGNORECASE)
WORD_JOINER = "\u2060"
_BACKTICKS = re.compile(r"`+")


def literal(text: object) -> str:
    """`text` as Markdown that shows exactly its characters: no emphasis, link, image, HTML, directive, icon or
    maths; a line break stays a line break. Characters that cannot start markup (letters, `.`, `/`, `feature_dim`'s
    underscore) are left as they are, so the Markdown source still reads as the text."""
    # Indentation would start a code block and a blank line a new paragraph: each line is kept, without them.
    lines = [line.strip(" \t") for line in _CONTROL.sub(" ", str(text).replace("\r\n", "\n")).split("\n")]
    escaped = _INLINE.sub(r"\\\1", _ICON.sub(rf"\1{WORD_JOINER}\2", "\n".join(line for line in lines if line)))
    escaped = _UNDERSCORE.sub(r"\\_", escaped)
    escaped = _LINE_START.sub(lambda m: m.group(1) + (m.group(2)[:-1] + "\\" + m.group(2)[-1]), escaped)
    return escaped.replace("\n", "  \n")  # two spaces: a hard line break, so a typed break is seen as one


def literal_code(text: object) -> str:
    """`text` as an inline code span (monospace, its characters as they are): fenced with one backtick more than
    the longest run of backticks inside it, so no typed backtick can close the span early."""
    flat = _CONTROL.sub(" ", str(text)).replace("\r", " ").replace("\n", " ")
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(flat)), default=0) + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else flat
    return f"{fence}{padded}{fence}"


def plotly_literal(text: object) -> str:
    """`text` for a Plotly title, legend entry, axis or tick label: its tags and entities shown as typed."""
    return html.escape(str(text), quote=False)
