"""What the page tests share: a temporary notebook the app opens (`notebook`), the page driver (`page`), a seeded
run, and the live charts' messages.

Page tests see the address `.streamlit/config.toml` gives (127.0.0.1) wherever pytest was started: Streamlit
reads that file only from the working folder, and without it the app's script would rightly refuse to serve
"every interface" without sign-in."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit import config
from streamlit.testing.v1 import AppTest

from engine.config import with_overrides
from engine.presets import PRESETS
from lab_notes import Notebook
from tests.helpers import claimed


APP = str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def served_on_loopback():
    before = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", before)


@pytest.fixture
def notebook(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'notebook.db'}"
    monkeypatch.setenv("LAB_NOTEBOOK_URL", url)
    monkeypatch.setenv("LAB_START_WORKER", "0")
    st.cache_resource.clear()  # the app opens the notebook named by this test's environment
    notebook = Notebook(url)
    yield notebook
    notebook.close()
    st.cache_resource.clear()

def page(name: str, *, secrets: dict | None = None, user: dict | None = None, **query: str) -> AppTest:
    """Page `name` (with secrets.toml's `secrets` and `st.user` as `user`, when given) after its query's rerun."""
    app = AppTest.from_file(APP, default_timeout=60)
    if secrets is not None:
        app.secrets = secrets
    if user is not None:
        app.user = user
    app.run()
    if user is None or user.get("is_logged_in"):  # a visitor has no navigation: the sign-in gate stopped it
        app.switch_page(f"app_pages/{name}.py")
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app

def live_charts(app: AppTest) -> dict[str, dict]:
    """The run page's live charts by title: what each sent the browser last (app/live_chart.py)."""
    return {message["title"]: message for message in (
        json.loads(c.proto.json) for c in app.get("bidi_component") if c.proto.component_name == "lab_notebook.live_chart")}

def png(colour: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (24, 12), (colour, 40, 40)).save(out, format="PNG")
    return out.getvalue()

def seeded_run(notebook: Notebook, *, name: str = "seeded", lr: float = 0.001, diverged: bool = False) -> int:
    mae = "2023-01-12-mae-two-decoders-different-targets"
    cfg = with_overrides(PRESETS[mae], [f"optim.lr={lr}"])
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name=name, preset=mae,
                             lint=[{"path": "loss.denominator", "message": "negatives only"}])
    attempt = claimed(notebook, run_id)
    for step in range(1, 51):
        loss = math.nan if diverged and step == 50 else 5.0 - step * 0.05
        notebook.log_metrics(run_id, step, {"loss/total": loss, "loss/recon_a": 0.3, "acc/prototype": step / 50,
                                        "grad_norm": 1.0, "lr": lr})
    notebook.log_image(run_id, "reconstruction", 25, png(100))
    notebook.log_image(run_id, "reconstruction", 50, png(200))
    notebook.flush()
    if diverged:
        notebook.finish_attempt(attempt, "diverged", reason="loss/total is nan",
                            report={"policy": "stop", "first_step": 50, "reason": "loss/total is nan", "incidents": []})
    else:
        notebook.finish_attempt(attempt, "completed")
    return run_id


def trained_run(notebook: Notebook, name: str, *extra: str) -> int:
    """A real tiny run with 2-D normalised features, trained in this process into the notebook."""
    from engine.train import train
    from lab_notes.notebook_sink import NotebookSink
    from tests.helpers import tiny

    cfg = tiny(PRESETS["2022-12-14-normalized-infonce-2d"], "schedule.episodes=6", "schedule.eval_every=3",
               "schedule.eval_episodes=4", "schedule.final_eval_episodes=20", *extra)
    run_id = notebook.create_run(cfg.model_dump(mode="json"), name=name, preset="2022-12-14-normalized-infonce-2d")
    sink = NotebookSink(notebook, claimed(notebook, run_id))
    assert train(cfg, sink).status == "completed"  # its status event ends the attempt
    return run_id
