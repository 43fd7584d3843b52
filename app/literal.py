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

# Every ASCII punctuation character: CommonMark makes each one literal after a backslash, which also defeats
# HTML (`\<`), entities (`\&`), Streamlit's `:red[…]` directives and `$…$` maths (escapes are honoured by those
# syntax extensions too).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # everything but tab and newline: shown as a space
_BACKTICKS = re.compile(r"`+")


def literal(text: object) -> str:
    """`text` as Markdown that shows exactly its characters: no emphasis, link, image, HTML, directive or maths;
    a line break stays a line break."""
    escaped = _PUNCTUATION.sub(r"\\\1", _CONTROL.sub(" ", str(text).replace("\r\n", "\n")))
    return "  \n".join(escaped.split("\n"))  # two spaces: a hard line break, so a typed break is seen as one


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
