"""Figure builders: pure functions from series to Plotly figures (and to PNG, for pinning into notes)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from app.literal import plotly_literal
from lab_notes import curves_png

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
GROUPS = (("Losses", ("loss/", "eval/loss/")), ("Accuracy", ("acc/", "eval/acc/", "seen/acc/")),
          ("95 % interval of held-out accuracy", ("eval/ci95/",)),
          ("Held-out feature space (Wang & Isola)", ("eval/alignment", "eval/uniformity")),
          ("Gradient norm", ("grad_norm",)), ("Feature norm (before normalisation)", ("feature_norm",)),
          ("Weight norm by layer", ("weights/",)), ("Gradient norm by layer", ("grads/",)),
          ("Learning rate", ("lr",)), ("Throughput", ("images_per_s",)),
          ("Achieved TFLOP/s", ("perf/tflops",)),
          ("Model FLOP utilisation (of the GPU's dense peak at the run's precision)", ("perf/mfu",)),
          ("System: use (%)", ("sys/util_percent/",)), ("System: memory (GB)", ("sys/memory_gb/",)),
          ("System: GPU power (W)", ("sys/power_w/",)))


def metric_groups(keys: list[str]) -> dict[str, list[str]]:
    """One chart per group of GROUPS (losses, accuracy, norms, lr, throughput, system); anything else alone."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        title = next((t for t, prefixes in GROUPS if key.startswith(prefixes)), key)
        groups.setdefault(title, []).append(key)
    order = [t for t, _ in GROUPS]
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


EmaState = tuple[float, float, bool]  # (running average, its weight so far, whether a finite point was seen)
EMA_START: EmaState = (0.0, 0.0, False)


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average with the start-up bias removed. Non-finite points
    do not enter the average (the smoothed curve carries on past them)."""
    return debiased_ema_from(EMA_START, values, weight)[0]


def debiased_ema_from(state: EmaState, values: np.ndarray, weight: float) -> tuple[np.ndarray, EmaState]:
    """The same average carried on from `state` over points that follow those it was taken over: a live chart
    smooths only the new points (what it sends on), and ends where the whole series' average would."""
    out = np.full(len(values), np.nan)
    last, debias, seen = state
    for i, value in enumerate(values):
        if math.isfinite(value):
            last = last * weight + (1 - weight) * value
            debias = debias * weight + (1 - weight)
            seen = True
        if seen:
            out[i] = last / debias if debias else value
    return out, (last, debias, seen)


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
    """Each series as a faint raw line with its debiased EMA drawn over it, and non-finite points as markers.
    Series names and the title are shown as typed (Plotly would read tags in them)."""
    figure = go.Figure()
    for i, (typed, (steps, values)) in enumerate(series.items()):
        name = plotly_literal(typed)
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
    figure.update_layout(title=plotly_literal(title), height=height, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                         xaxis_title="step", legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def chart_png(series: Mapping[str, Series], *, title: str, smoothing: float = 0.0, size: tuple[int, int] = (720, 360)
              ) -> bytes:
    """A PNG of the same chart for pinning into a note and exporting the journal: drawn by matplotlib (Agg) on the
    server, with axes, ticks and a legend, exactly as a journal draft's charts are."""
    return curves_png(series, title=title, smoothing=smoothing, size=(size[0] / 100, size[1] / 100))


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


def provenance_fields(provenance: Mapping) -> dict[str, object]:
    """What of an attempt's provenance can change a result, flat (`git.commit`, `packages.torch`, …), for the
    same differs-only table as the config."""
    git = provenance.get("git", {})
    hardware = provenance.get("hardware", {})
    return flatten({
        "git": {"commit": git.get("commit", git.get("error")), "branch": git.get("branch"), "dirty": git.get("dirty")},
        "packages": provenance.get("packages", {}), "python": provenance.get("python"),
        "cuda": provenance.get("cuda"), "cudnn": provenance.get("cudnn"), "host": provenance.get("host"),
        "hardware": {"cpu": hardware.get("cpu"), "gpus": ", ".join(g["name"] for g in hardware.get("gpus", []))
                     or "none"},
    })


def histogram_figure(groups: Mapping[str, Mapping], which: str, *, title: str, height: int = 360) -> go.Figure:
    """One line per layer group: the histogram of its weights or gradients (`which`), counts on a log axis."""
    figure = go.Figure()
    for i, (group, kinds) in enumerate(groups.items()):
        group = plotly_literal(group)
        histogram = kinds.get(which)
        if not histogram or not histogram["counts"]:
            continue
        edges = np.asarray(histogram["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        figure.add_trace(go.Scatter(x=centres, y=histogram["counts"], mode="lines", name=group,
                                    line={"color": PALETTE[i % len(PALETTE)], "shape": "hvh"}))
    figure.update_layout(title=plotly_literal(title), height=height, margin={"l": 50, "r": 20, "t": 40, "b": 40},
                         xaxis_title="value", yaxis={"type": "log", "title": "count"},
                         legend={"orientation": "h", "y": -0.25})
    return figure


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


# --- evaluation: few-shot accuracy with intervals, and the held-out feature space --------------------------------

JUDGE_NAMES = {"prototype": "nearest prototype", "discriminator": "discriminator", "knn": "k-NN",
               "linear_probe": "linear probe"}


def few_shot_figure(results: Mapping[str, Mapping[str, Mapping[str, float]]], *, title: str,
                    height: int = 340) -> go.Figure:
    """Grouped bars, one group per judge and one bar per result set (a run, or held-out vs seen classes), each
    with its 95 % interval as an error bar; chance (1/N) is for the caller to draw."""
    figure = go.Figure()
    for i, (typed, by_judge) in enumerate(results.items()):
        name = plotly_literal(typed)  # a run's label: shown as typed, in the legend and the hover box
        judges = [j for j in JUDGE_NAMES if j in by_judge]
        figure.add_trace(go.Bar(
            x=[JUDGE_NAMES[j] for j in judges], y=[by_judge[j]["mean"] for j in judges], name=name,
            marker_color=PALETTE[i % len(PALETTE)],
            error_y={"type": "data", "array": [by_judge[j]["ci95"] for j in judges], "visible": True},
            hovertemplate="%{x}: %{y:.3f} ± %{error_y.array:.3f}<extra>" + name + "</extra>"))
    figure.update_layout(title=plotly_literal(title), barmode="group", height=height,
                         yaxis={"range": [0, 1], "title": "accuracy"},
                         margin={"l": 50, "r": 20, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return figure


def interval_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, str]]:
    """{result set: {judge: "mean ± ci95"}}, for a table beside the bars."""
    return {name: {JUDGE_NAMES[j]: f"{v['mean']:.3f} ± {v['ci95']:.3f}" for j, v in by_judge.items()}
            for name, by_judge in results.items()}


def feature_figure(feature_map: Mapping, *, height: int = 420) -> go.Figure:
    """The held-out features as stored by an evaluation: 2-D points coloured by class (with the unit circle when
    they are L2-normalised), 1-D values as one strip per class, more dimensions by their PCA projection."""
    points = np.asarray(feature_map["points"], dtype=float)
    labels = np.asarray(feature_map["labels"])
    names = feature_map.get("class_names") or []
    figure = go.Figure()
    one_d = points.ndim == 2 and points.shape[1] == 1
    for i, label in enumerate(sorted(set(labels.tolist()))):
        chosen = points[labels == label]
        name = plotly_literal(names[label] if label < len(names) else label)  # class names: the user's folders
        colour = PALETTE[i % len(PALETTE)]
        if one_d:  # a strip per class: the ±1 collapse of normalised 1-D features shows as two dots per strip
            x, y = chosen[:, 0], np.full(len(chosen), name)
        else:
            x, y = chosen[:, 0], chosen[:, 1]
        figure.add_trace(go.Scatter(x=x, y=y, mode="markers", name=name,
                                    marker={"color": colour, "size": 7, "opacity": 0.7}))
    if feature_map.get("normalized") and feature_map.get("dim") == 2:
        angle = np.linspace(0, 2 * np.pi, 181)
        figure.add_trace(go.Scatter(x=np.cos(angle), y=np.sin(angle), mode="lines", name="unit circle",
                                    line={"color": "#999", "width": 1, "dash": "dot"}, hoverinfo="skip"))
        figure.update_yaxes(scaleanchor="x", scaleratio=1)
    axes = ("feature", "class") if one_d else (("PC 1", "PC 2") if feature_map.get("projection") == "pca"
                                                  else ("feature 1", "feature 2"))
    figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 30, "b": 40},
                         xaxis_title=axes[0], yaxis_title=axes[1], legend={"orientation": "h", "y": -0.2})
    return figure


def sparkline(steps: np.ndarray, values: np.ndarray, *, height: int = 60) -> go.Figure:
    """A loss curve the size of a table row: no axes, no legend, the last value marked."""
    finite = np.where(np.isfinite(values), values, np.nan)
    figure = go.Figure(go.Scatter(x=steps, y=finite, mode="lines", line={"color": PALETTE[0], "width": 1.5},
                                  hoverinfo="skip"))
    figure.add_trace(go.Scatter(x=steps[-1:], y=finite[-1:], mode="markers", marker={"color": PALETTE[0], "size": 5},
                                hoverinfo="skip"))
    figure.update_layout(height=height, margin={"l": 0, "r": 0, "t": 0, "b": 0}, showlegend=False,
                         xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def parallel_coordinates(points: Sequence[Mapping[str, object]], metric: str, values: Sequence[float | None], *,
                         height: int = 380) -> go.Figure:
    """One line per run across the swept fields to its final `metric` (coloured by it); text values become
    labelled positions on their axis. Runs without the metric are left out."""
    kept = [(p, v) for p, v in zip(points, values) if v is not None and math.isfinite(v)]
    dimensions = []
    for path in (points[0] if points else {}):
        column = [p[path] for p, _ in kept]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            dimensions.append({"label": plotly_literal(path), "values": column})
        else:
            labels = sorted({str(v) for v in column})
            dimensions.append({"label": plotly_literal(path), "values": [labels.index(str(v)) for v in column],
                               "tickvals": list(range(len(labels))), "ticktext": [plotly_literal(t) for t in labels]})
    scores = [v for _, v in kept]
    dimensions.append({"label": plotly_literal(metric), "values": scores})
    figure = go.Figure(go.Parcoords(dimensions=dimensions, line={"color": scores, "colorscale": "Viridis",
                                                                   "showscale": True}))
    figure.update_layout(height=height, margin={"l": 60, "r": 60, "t": 50, "b": 30})
    return figure
