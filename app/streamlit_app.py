"""Entry point: `python -m app` (or `streamlit run app/streamlit_app.py`). Refuses a non-loopback address without
sign-in, lets nobody past without signing in when sign-in is configured, then routes to the pages; the sidebar
shows who is signed in and the workers' health (and, in single-user mode, starts one when none is alive)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: app, engine, lab_notes

import streamlit as st  # noqa: E402

from app.identity import refuse_to_serve_here, require_sign_in, signed_in_box  # noqa: E402
from app.services import other_pages_loaded  # noqa: E402
from app.sidebar import worker_health  # noqa: E402

st.set_page_config(page_title="Lab notebook", page_icon="🧪", layout="wide")
# Both before anything else is drawn (the sidebar's queue count included): one gate for every page.
refuse_to_serve_here()
require_sign_in()
with st.sidebar:
    signed_in_box()
    worker_health()
pages = [
    st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("app_pages/runs.py", title="Runs", icon="📋", url_path="runs"),
    st.Page("app_pages/new_run.py", title="New run", icon="🚀", url_path="new"),
    st.Page("app_pages/run.py", title="Run", icon="📈", url_path="run"),
    st.Page("app_pages/compare.py", title="Compare", icon="⚖️", url_path="compare"),
    st.Page("app_pages/sweep.py", title="Sweeps", icon="🧹", url_path="sweep"),
    st.Page("app_pages/journal.py", title="Journal", icon="📓", url_path="journal"),
]
st.navigation(pages).run()
other_pages_loaded()  # after the page is drawn, once per server
