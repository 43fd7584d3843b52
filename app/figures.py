"""Figure builders: pure functions from series to Plotly figures (and to PNG, for pinning into notes)."""

from __future__ import annotations

import io
import math
from typing import Mapping

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
GROUPS = (("Losses", ("loss/", "eval/loss/")), ("Accuracy", ("acc/", "eval/acc/")),
          ("Gradient norm", ("grad_norm",)), ("Learning rate", ("lr",)), ("Throughput", ("images_per_s",)))


def metric_groups(keys: list[str]) -> dict[str, list[str]]:
    """One chart per group: losses, accuracy, gradient norm, lr, throughput; anything else on its own."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        title = next((t for t, prefixes in GROUPS if key.startswith(prefixes)), key)
        groups.setdefault(title, []).append(key)
    order = [t for t, _ in GROUPS]
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average with the start-up bias removed. Non-finite points
    do not enter the average (the smoothed curve carries on past them)."""
    out = np.full(len(values), np.nan)
    last, debias, seen = 0.0, 0.0, False
    for i, value in enumerate(values):
        if math.isfinite(value):
            last = last * weight + (1 - weight) * value
            debias = debias * weight + (1 - weight)
            seen = True
        if seen:
            out[i] = last / debias if debias else value
    return out


def nonfinite_markers(steps: np.ndarray, values: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, steps, y) for NaN, +inf and -inf points, placed at the last finite value before each (or 0) so
    they sit on the curve where it broke; +inf/-inf at the finite max/min."""
    finite = np.isfinite(values)
    if finite.all():
        return []
    if finite.any():
        last_finite = np.where(finite, values, np.nan)
        index = np.where(finite, np.arange(len(values)), 0)
        np.maximum.accumulate(index, out=index)
        before = last_finite[index]
        before = np.where(np.isnan(before), values[finite][0], before)
        top, bottom = values[finite].max(), values[finite].min()
    else:
        before, top, bottom = np.zeros(len(values)), 1.0, 0.0
    found = []
    for label, mask, y in (("NaN", np.isnan(values), before), ("+inf", values == np.inf, np.full(len(values), top)),
                           ("−inf", values == -np.inf, np.full(len(values), bottom))):
        if mask.any():
            found.append((label, steps[mask], y[mask]))
    return found


MARKER_SYMBOLS = {"NaN": "x", "+inf": "triangle-up", "−inf": "triangle-down"}


def metric_figure(series: Mapping[str, Series], *, title: str, smoothing: float = 0.6, log_y: bool = False,
                  height: int = 320) -> go.Figure:
    """Each series as a faint raw line with its debiased EMA drawn over it, and non-finite points as markers."""
    figure = go.Figure()
    for i, (name, (steps, values)) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        finite = np.where(np.isfinite(values), values, np.nan)
        smoothed = smoothing > 0 and len(values) > 1
        figure.add_trace(go.Scatter(x=steps, y=finite, mode="lines", name=name if not smoothed else f"{name} (raw)",
                                      line={"color": colour, "width": 1}, opacity=0.3 if smoothed else 1.0,
                                      showlegend=not smoothed, legendgroup=name))
        if smoothed:
            figure.add_trace(go.Scatter(x=steps, y=debiased_ema(values, smoothing), mode="lines", name=name,
                                          line={"color": colour, "width": 2}, legendgroup=name))
        for label, marker_steps, y in nonfinite_markers(steps, values):
            figure.add_trace(go.Scatter(
                x=marker_steps, y=y, mode="markers", name=f"{name}: {label}", legendgroup=name,
                marker={"symbol": MARKER_SYMBOLS[label], "size": 11, "color": "#d62728",
                        "line": {"width": 1, "color": "black"}},
                hovertemplate=f"{name} = {label} at step %{{x}}<extra></extra>"))
    figure.update_layout(title=title, height=height, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                         xaxis_title="step", legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def chart_png(series: Mapping[str, Series], *, title: str, smoothing: float = 0.0, size: tuple[int, int] = (720, 360)
              ) -> bytes:
    """A plain PNG of the same chart, drawn with Pillow, for pinning into a note and exporting the journal."""
    width, height = size
    left, right, top, bottom = 60, 15, 30, 35
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((left, 8), title, fill="black")
    curves = {}
    for name, (steps, values) in series.items():
        shown = debiased_ema(values, smoothing) if smoothing > 0 else np.where(np.isfinite(values), values, np.nan)
        curves[name] = (np.asarray(steps, dtype=float), shown, values)
    xs = np.concatenate([c[0] for c in curves.values()]) if curves else np.array([0.0, 1.0])
    ys = np.concatenate([c[1][np.isfinite(c[1])] for c in curves.values()]) if curves else np.array([0.0])
    ys = ys if len(ys) else np.array([0.0, 1.0])
    x0, x1 = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    y0, y1 = float(ys.min()), float(ys.max())
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (width - left - right),
                height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

    draw.rectangle([left, top, width - right, height - bottom], outline="#888888")
    for frac in (0.0, 0.5, 1.0):
        y = y0 + frac * (y1 - y0)
        draw.text((4, to_px(x0, y)[1] - 6), f"{y:.3g}", fill="#444444")
        x = x0 + frac * (x1 - x0)
        draw.text((to_px(x, y0)[0] - 10, height - bottom + 6), f"{x:.0f}", fill="#444444")
    for i, (name, (steps, shown, raw)) in enumerate(curves.items()):
        colour = PALETTE[i % len(PALETTE)]
        points = [to_px(x, y) for x, y in zip(steps, shown) if math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for _, marker_steps, marker_y in nonfinite_markers(np.asarray(steps), np.asarray(raw)):
            for x, y in zip(marker_steps, marker_y):
                px, py = to_px(float(x), float(y))
                draw.line([(px - 5, py - 5), (px + 5, py + 5)], fill="#d62728", width=2)
                draw.line([(px - 5, py + 5), (px + 5, py - 5)], fill="#d62728", width=2)
        draw.text((width - right - 200, top + 6 + 14 * i), name, fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def flatten(config: Mapping, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def config_diff(configs: Mapping[str, Mapping]) -> dict[str, dict[str, object]]:
    """Only the fields whose values differ between the configs: path -> {label: value}."""
    flat = {label: flatten(cfg) for label, cfg in configs.items()}
    paths = sorted(set().union(*(f.keys() for f in flat.values()))) if flat else []
    diff = {}
    for path in paths:
        values = {label: f.get(path, "—") for label, f in flat.items()}
        if len({repr(v) for v in values.values()}) > 1:
            diff[path] = values
    return diff
