"""Small display pieces shared by pages."""

from __future__ import annotations

import io
from typing import Callable, Literal

import pandas as pd
import streamlit as st

from lab_notes import check_image


def show_image(data: bytes, *, caption: str, width: int | Literal["stretch", "content"] = "content") -> bool:
    """The image, or a placeholder saying it cannot be shown: one damaged image stored before the notebook
    checked images fully must not stop the rest of the page (its own Edit and Delete included) from rendering,
    nor show the reader a broken picture. `caption` is Markdown: text a person typed goes in through
    `app.literal.literal`."""
    try:
        check_image(data, caption)
        st.image(data, caption=caption, width=width)
        return True
    except Exception as error:  # noqa: BLE001 - BadImage or whatever the decoder raises: the page goes on
        st.warning(f"🖼️ **{caption}** cannot be shown: the stored image is damaged or not a web image "
                   f"({type(error).__name__}).")
        return False


def frame_downloads(make_frame: Callable[[], pd.DataFrame], name: str, *, key: str) -> None:
    """CSV and Parquet download buttons for a data frame that is built only when one is clicked (all of a run's
    points can be millions of rows: never on every rerun of the page)."""
    left, right = st.columns(2)
    left.download_button(f"⬇ {name}.csv", lambda: make_frame().to_csv().encode(), f"{name}.csv", "text/csv",
                         key=f"{key}:csv", on_click="ignore")
    right.download_button(f"⬇ {name}.parquet", lambda: parquet_bytes(make_frame()), f"{name}.parquet",
                          "application/vnd.apache.parquet", key=f"{key}:parquet", on_click="ignore")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    try:
        frame.to_parquet(out)
    except Exception:  # noqa: BLE001 - pyarrow cannot type a column of mixed values: write those as text
        mixed = {c: "string" for c in frame.columns if frame[c].dtype == object}
        out = io.BytesIO()
        frame.astype(mixed).to_parquet(out)
    return out.getvalue()


# A tab in the background tells the server so: it is redrawn rarely until the person comes back to it (each tab
# kept live on a run costs the run's cores some work, bench/viewers.py).
_PAGE_VISIBILITY_JS = """
export default function ({ setStateValue }) {
  const report = () => setStateValue("visible", document.visibilityState === "visible");
  document.addEventListener("visibilitychange", report);
  if (document.visibilityState !== "visible") report();  // opened in the background
  return () => document.removeEventListener("visibilitychange", report);
}
"""
_page_visibility = st.components.v2.component("lab_notebook.page_visibility", js=_PAGE_VISIBILITY_JS)


def page_is_visible() -> bool:
    """Whether the browser shows this tab now (False while it is behind another tab or minimised); a change
    reruns the page."""
    state = _page_visibility(key="page visibility", default={"visible": True}, on_visible_change=lambda: None,
                             height=0)
    return bool(state.get("visible", True))
