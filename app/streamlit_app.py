"""Entry point: `streamlit run app/streamlit_app.py`. Routes to the pages; the sidebar shows the workers' health
and starts one when none is alive."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: app, engine, lab_notes

import streamlit as st  # noqa: E402

from app.sidebar import worker_health  # noqa: E402

st.set_page_config(page_title="Lab notebook", page_icon="🧪", layout="wide")
with st.sidebar:
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
