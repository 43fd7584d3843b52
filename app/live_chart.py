"""A live metric chart that sends the browser only the points it does not have yet.

A run page open on a live run is redrawn every second. Sending whole Plotly figures made each tab cost its browser
~40 % of a core (Plotly re-laid-out every chart from scratch each second), so eight tabs fell behind without bound
and took the run's cores (bench/viewers.py). Here each chart is drawn in the page by uPlot (a small canvas chart for
time series, vendored under app/static/uplot/, MIT) and each rerun sends only the points of its last few messages.
The browser keeps what it was sent and appends what it lacks; a message it cannot follow on from (it missed too
many, or was reloaded) makes it ask for the whole series again, so nothing drifts.

`next_message` is pure (what to send, from what was sent and what the page now holds); `live_chart` is the
Streamlit piece around it.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Hashable, Mapping

import numpy as np
import streamlit as st

from app.charts import EMA_START, PALETTE, EmaState, Series, debiased_ema_from, nonfinite_markers

HEIGHT = 300  # pixels of the plot; the legend goes below it
# A browser draws only the last of several messages that arrive together (a busy tab skips some): each message
# carries the points of the last WINDOW, so one that missed up to WINDOW - 1 of them still follows on.
WINDOW = 3
_generations = itertools.count(1)  # a reset starts a new generation: a browser never mixes two series' points


@dataclasses.dataclass(frozen=True)
class Sent:
    """What one chart in one browser session has been sent: enough to send the next points and nothing else."""
    generation: int
    shape: tuple  # what, when it changes, means starting over: series names, smoothing, log axis, the caller's identity
    last_steps: Mapping[str, int]  # per series: the step of the last point sent (the series must still hold it)
    # (points sent per series, the smoothing's state there) after each of the last WINDOW messages, oldest first
    after: tuple[tuple[Mapping[str, int], Mapping[str, EmaState]], ...]
    message: dict  # the last message, sent again unchanged when nothing is new


def next_message(sent: Sent | None, series: Mapping[str, Series], *, title: str, smoothing: float, log_y: bool,
                 identity: Hashable = None) -> tuple[dict, Sent]:
    """The message that brings the browser to `series` from any of the last WINDOW states it was sent, and what has
    then been sent. Only the points past those go, unless the series no longer hold what was sent (downsampled
    again, another attempt, other settings): then all of them, in a new generation."""
    names = tuple(series)
    shape = (names, smoothing, log_y, identity)
    counts = {name: len(series[name][0]) for name in names}
    reset = sent is None or sent.shape != shape or not all(
        _still_holds(series[name], sent.after[-1][0][name], sent.last_steps[name]) for name in names)
    if not reset and sent is not None and counts == sent.after[-1][0]:
        return sent.message, sent  # nothing new: the same element again, which the browser does not redraw
    after = (((dict.fromkeys(names, 0), dict.fromkeys(names, EMA_START)),) if reset or sent is None else sent.after)[-WINDOW:]
    starts, ema_at_start = after[0]
    smoothed = smoothing > 0
    parts, ema = [], {}
    for i, name in enumerate(names):
        steps, values = series[name]
        start = starts[name]
        part = {"name": name, "color": PALETTE[i % len(PALETTE)], "start": start, "x": _numbers(steps[start:]),
                "y": _numbers(values[start:], log_y)}
        if smoothed:
            average, ema[name] = debiased_ema_from(ema_at_start[name], values[start:], smoothing)
            part["s"] = _numbers(average, log_y)
        parts.append(part)
    generation = next(_generations) if reset or sent is None else sent.generation
    message = {"title": title, "height": HEIGHT, "log_y": log_y, "generation": generation, "series": parts,
               "marks": _marks(series)}
    last_steps = {name: int(series[name][0][-1]) if counts[name] else -1 for name in names}
    return message, Sent(generation, shape, last_steps, (*after, (counts, ema))[-WINDOW:], message)


def _still_holds(held: Series, count: int, last_step: int) -> bool:
    steps = held[0]
    return count <= len(steps) and (count == 0 or int(steps[count - 1]) == last_step)


def _numbers(values: np.ndarray, log_y: bool = False) -> list:
    """JSON numbers, with null where a point cannot be drawn (non-finite; not positive on a log axis)."""
    drawable = np.isfinite(values) & ((values > 0) if log_y else True)
    return [v if ok else None for v, ok in zip(np.asarray(values).tolist(), drawable.tolist())]


def _marks(series: Mapping[str, Series]) -> list[dict]:
    """NaN and ±inf points as markers where the curve broke (as on the Plotly charts)."""
    return [{"label": f"{name}: {label}", "x": _numbers(steps), "y": _numbers(y)}
            for name, (all_steps, values) in series.items()
            for label, steps, y in nonfinite_markers(np.asarray(all_steps), np.asarray(values))]


def _asset_base() -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    return f"/{base}/app/static/uplot/" if base else "/app/static/uplot/"


_LIVE_CHART_JS = Path(__file__).with_name("live_chart.js").read_text()
_component = st.components.v2.component("lab_notebook.live_chart", js=_LIVE_CHART_JS, isolate_styles=False)


def live_chart(title: str, series: Mapping[str, Series], *, key: str, smoothing: float, log_y: bool,
               identity: Hashable = None) -> None:
    """The chart of `series` (step → value, one line each, smoothed over a faint raw line), sending this session's
    browser only what it does not have. `identity` changing (another run, another attempt) starts it over."""
    state_key = f"live chart:{key}"

    def send_everything() -> None:  # the browser could not follow on (reloaded, or a message was lost)
        st.session_state.pop(state_key, None)

    message, st.session_state[state_key] = next_message(st.session_state.get(state_key), series, title=title,
                                                        smoothing=smoothing, log_y=log_y, identity=identity)
    _component(key=key, data={**message, "asset_base": _asset_base()}, on_resend_change=send_everything,
               height="content")
