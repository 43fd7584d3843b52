"""Page tests see the address `.streamlit/config.toml` gives (127.0.0.1) wherever pytest was started: Streamlit
reads that file only from the working folder, and without it the app's script would rightly refuse to serve
"every interface" without sign-in."""

from __future__ import annotations

import pytest
from streamlit import config


@pytest.fixture(autouse=True)
def served_on_loopback():
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", before)
