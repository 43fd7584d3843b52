"""Small display pieces shared by pages."""

from __future__ import annotations

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
