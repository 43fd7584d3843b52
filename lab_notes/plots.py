"""Charts as PNG, drawn on the server with matplotlib's Agg renderer (no browser, no display): a journal draft's
figures and the charts pinned into notes. They look like the app's charts: the same palette, axes with ticks, a
legend, non-finite points marked with a red ×. Each call builds its own Figure object (no pyplot state), so
several threads may draw at once."""

from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure as PlotFigure

Series = tuple[np.ndarray, np.ndarray]  # (steps, values)
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
SIZE = (7.2, 3.6)  # inches at 100 dpi: 720 × 360 px, the size of the charts pinned so far
DPI = 100
FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Zen Hei"]
_fonts_chosen = False


def _choose_fonts() -> None:
    """Once: Latin text in DejaVu Sans, CJK glyphs (a Chinese draft's titles) from a Noto CJK font where one is
    installed (matplotlib falls back glyph by glyph along the family list)."""
    global _fonts_chosen
    if not _fonts_chosen:
        from matplotlib import font_manager

        installed = {font.name for font in font_manager.fontManager.ttflist}
        matplotlib.rcParams["font.family"] = [f for f in FONTS if f in installed] or ["sans-serif"]
        _fonts_chosen = True


def _png(figure: PlotFigure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _new_figure(size: tuple[float, float]) -> PlotFigure:
    """Fixed margins in inches (a constrained layout costs a third more time per figure)."""
    _choose_fonts()
    figure = PlotFigure(figsize=size)
    width, height = size
    figure.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.55 / height, top=1 - 0.35 / height)
    return figure


def _plain(figure: PlotFigure, title: str, xlabel: str, ylabel: str) -> Any:
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=11, loc="left")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, color="#e5e5e5", linewidth=0.8)
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    return axes


def curves_png(series: Mapping[str, Series], *, title: str, ylabel: str = "value", xlabel: str = "step",
               smoothing: float = 0.0, log_y: bool = False, size: tuple[float, float] = SIZE) -> bytes:
    """One line per series (smoothed by a debiased EMA when `smoothing` > 0), with NaN and ±inf points marked
    by a red × at the edge of the plot, as the app's live charts do."""
    figure = _new_figure(size)
    axes = _plain(figure, title, xlabel, ylabel)
    marked = False
    for i, (name, (steps, values)) in enumerate(series.items()):
        steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
        finite = np.isfinite(values)
        shown = _ema(values, smoothing) if smoothing > 0 else np.where(finite, values, np.nan)
        few = len(steps) <= 30  # a handful of evaluations: dots show where the points are
        axes.plot(steps, shown, color=PALETTE[i % len(PALETTE)], linewidth=1.6, label=name,
                  marker="o" if few else None, markersize=3)
        if not finite.all() and finite.any():
            edge = float(np.nanmax(values[finite]))
            axes.scatter(steps[~finite], np.full((~finite).sum(), edge), marker="x", color="#d62728", s=40,
                         zorder=3, label=None if marked else "NaN / ±inf")
            marked = True
    if log_y:
        axes.set_yscale("log")
    if series:
        axes.legend(loc="best", fontsize=8, frameon=False)
    return _png(figure)


def _ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average over the finite values (non-finite ones are gaps)."""
    out = np.full(len(values), np.nan)
    last, count = 0.0, 0
    for i, value in enumerate(values):
        if not math.isfinite(value):
            continue
        count += 1
        last = last * weight + (1 - weight) * value
        out[i] = last / (1 - weight ** count)
    return out


def features_png(feature_map: Mapping[str, Any], *, title: str, size: tuple[float, float] = (5.6, 4.4)) -> bytes:
    """Held-out features as stored by an evaluation: 2-D points coloured by class (the unit circle when they
    are L2-normalised), 1-D values as one strip per class; the stored PCA projection for more dimensions."""
    points = np.asarray(feature_map["points"], dtype=float)
    labels = np.asarray(feature_map["labels"])
    names = list(feature_map.get("class_names") or [])
    one_d = points.ndim == 2 and points.shape[1] == 1
    figure = _new_figure(size)
    projected = " (PCA)" if feature_map.get("projection") == "pca" else ""
    axes = _plain(figure, title, "feature" if one_d else f"dimension 1{projected}",
                  "class" if one_d else f"dimension 2{projected}")
    for i, label in enumerate(sorted(set(labels.tolist()))):
        chosen = points[labels == label]
        name = names[label] if isinstance(label, int) and label < len(names) else str(label)
        colour = PALETTE[i % len(PALETTE)]
        if one_d:
            axes.scatter(chosen[:, 0], np.full(len(chosen), i), s=14, color=colour, label=name)
        else:
            axes.scatter(chosen[:, 0], chosen[:, 1], s=14, color=colour, label=name, alpha=0.85)
    if feature_map.get("normalized") and not one_d:
        angle = np.linspace(0, 2 * np.pi, 200)
        axes.plot(np.cos(angle), np.sin(angle), color="#888888", linewidth=0.8, linestyle=":")
        axes.set_aspect("equal", adjustable="datalim")
    axes.legend(loc="best", fontsize=8, frameon=False)
    return _png(figure)


def parallel_png(points: Sequence[Mapping[str, object]], metric: str, values: Sequence[float | None], *,
                 title: str, size: tuple[float, float] = (7.2, 3.8)) -> bytes:
    """One line per run across the swept fields to its final `metric`, coloured by it (as the sweep page's
    parallel coordinates); each axis scaled to its own range, text values as labelled positions."""
    kept = [(p, v) for p, v in zip(points, values) if v is not None and math.isfinite(v)]
    paths = list(points[0]) if points else []
    figure = _new_figure(size)
    axes = _plain(figure, title, "", "")
    axes.grid(False)
    columns: list[tuple[np.ndarray, list[tuple[float, str]]]] = []
    for path in paths:
        raw = [p[path] for p, _ in kept]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw):
            numbers = np.asarray(raw, dtype=float)
            ticks = sorted(set(numbers.tolist()))
            columns.append((numbers, [(t, f"{t:g}") for t in ticks]))
        else:
            labels = sorted({str(v) for v in raw})
            columns.append((np.asarray([labels.index(str(v)) for v in raw], dtype=float),
                            [(float(i), t) for i, t in enumerate(labels)]))
    scores = np.asarray([v for _, v in kept], dtype=float)
    columns.append((scores, [(float(s), f"{s:.3g}") for s in sorted(set(scores.tolist()))]))
    scaled = []
    for numbers, ticks in columns:
        low, high = (float(numbers.min()), float(numbers.max())) if len(numbers) else (0.0, 1.0)
        span = high - low or 1.0
        scaled.append(((numbers - low) / span, [((t - low) / span, text) for t, text in ticks]))
    xs = np.arange(len(columns))
    cmap = matplotlib.colormaps["viridis"]
    low, high = (float(scores.min()), float(scores.max())) if len(scores) else (0.0, 1.0)
    for row in range(len(kept)):
        shade = (scores[row] - low) / ((high - low) or 1.0)
        axes.plot(xs, [column[0][row] for column in scaled], color=cmap(shade), linewidth=1.8)
    for x, (_, ticks) in zip(xs, scaled):
        axes.axvline(x, color="#444444", linewidth=0.8)
        for y, text in ticks:
            axes.annotate(text, (x, y), xytext=(4, 0), textcoords="offset points", fontsize=7, va="center")
    axes.set_xticks(xs, [*paths, metric], fontsize=8)
    axes.set_yticks([])
    axes.set_ylim(-0.05, 1.05)
    return _png(figure)
