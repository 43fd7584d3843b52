"""The server's safe defaults live in .streamlit/config.toml, which `streamlit run` reads from the working
directory the README's command uses. (That the running app listens on loopback only is checked on the socket by
the browser tests.)"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_server_config_is_loopback_quiet_and_capped():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["client"]["showErrorDetails"] == "none"  # no tracebacks for a visitor to read
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy button
    assert 0 < config["server"]["maxUploadSize"] <= 100
    assert config["server"]["enableStaticServing"] is True  # app/static/: the live charts' uPlot
