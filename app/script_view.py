"""What the Run page shows of a run that is not a preset's (a script run, imported TensorBoard logs): its command,
its images under their own keys, the text it logged, its config as a flat table. Text the script wrote is shown
as text, never as Markdown or HTML."""

from __future__ import annotations

import shlex
from pathlib import PurePath
from typing import Any, Mapping

import streamlit as st

from app.charts import flatten
from app.literal import literal, literal_code
from app.widgets import show_image
from lab_notes import Notebook, Run

TEXT = "text"  # engine.tensorboard_feed.SNAPSHOT_TEXT
HPARAMS = "hparams"  # engine.tensorboard_feed.SNAPSHOT_HPARAMS


def is_own_code(config: Mapping[str, Any]) -> bool:
    """Whether a run's config is not a preset's (it has no model section): the page shows it generically."""
    return "model" not in config


def command_fact(run: Run) -> str | None:
    """The facts line's word on a script run: its command as a shell would quote it, the program by its name (a
    path such as a virtual environment's `/home/me/project/.venv/bin/python` reads as `python`; the Config tab
    keeps the whole argv)."""
    command = run.config.get("command")
    if not isinstance(command, list) or not command:
        return None
    program, *arguments = map(str, command)
    return f"command {literal_code(shlex.join([PurePath(program).name or program, *arguments]))}"


def draw_images_and_text(notebook: Notebook, run: Run) -> None:
    """Each image key with a step slider, then each text tag's entries, newest first."""
    keys = notebook.image_keys(run.id)
    texts = notebook.snapshots(run.id, TEXT)
    if not keys and not texts:
        st.info("No images or text yet (SummaryWriter's add_image(s) and add_text land here).")
    for key in keys:
        steps = notebook.image_steps(run.id, key)
        step = steps[0] if len(steps) == 1 else st.select_slider(f"{literal(key)} — step", options=steps,
                                                                 value=steps[-1], key=f"image-step:{key}")
        show_image(notebook.get_image(run.id, key, step), caption=f"{literal(key)} at step {step}")
    by_tag: dict[str, list[tuple[int, str]]] = {}
    for snapshot in texts:
        by_tag.setdefault(snapshot.key, []).append((snapshot.step, str(snapshot.payload.get("text", ""))))
    for tag, entries in by_tag.items():
        st.markdown(f"**{literal(tag)}**")
        for step, text in sorted(entries, reverse=True):
            st.caption(f"step {step}")
            st.text(text)  # plain text: what the script wrote, never rendered


def draw_flat_config(notebook: Notebook, run: Run) -> None:
    """The config (and any hparams the script logged) as one flat table of field -> value."""
    rows = {path: str(value) for path, value in flatten(run.config).items()}
    hparams = notebook.snapshots(run.id, HPARAMS)
    if hparams:
        rows.update({f"hparams.{k}": str(v) for k, v in hparams[-1].payload.items()})
    st.dataframe({"value": rows}, width="stretch")
