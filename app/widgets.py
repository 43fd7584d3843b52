"""Small display pieces shared by pages."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from lab_notes.images import check_image


def show_image(data: bytes, *, caption: str, width: int | str = "content") -> bool:
    """The image, or a placeholder saying it cannot be shown: one damaged image stored before the notebook
    checked images fully must not stop the rest of the page (its own Edit and Delete included) from rendering,
    nor show the reader a broken picture."""
    try:
        check_image(data, caption)
        st.image(data, caption=caption, width=width)
        return True
    except Exception as error:  # noqa: BLE001 - BadImage or whatever the decoder raises: the page goes on
        st.warning(f"🖼️ **{caption}** cannot be shown: the stored image is damaged or not a web image "
                   f"({type(error).__name__}).")
        return False


def frame_downloads(frame: pd.DataFrame, name: str, *, key: str) -> None:
    """CSV and Parquet download buttons for a data frame, side by side."""
    left, right = st.columns(2)
    left.download_button(f"⬇ {name}.csv", frame.to_csv().encode(), f"{name}.csv", "text/csv", key=f"{key}:csv")
    try:
        parquet = io.BytesIO()
        frame.to_parquet(parquet)
    except (ValueError, TypeError, ImportError) as error:  # a column pyarrow cannot type: CSV still works
        right.caption(f"Parquet unavailable for this table: {error}")
        return
    right.download_button(f"⬇ {name}.parquet", parquet.getvalue(), f"{name}.parquet",
                          "application/vnd.apache.parquet", key=f"{key}:parquet")
