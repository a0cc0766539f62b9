"""Charts for the reports page as plain shapes, drawn as inline SVG by `charts.html`.

The geometry is worked out here and the template only places it, so every label (categories
and root causes are free text) goes through Jinja's autoescaping like the rest of the page,
and nothing is fetched from anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

# Colour-blind-safe palette (Okabe and Ito), then greys for the rest.
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#cc79a7",
    "#56b4e9",
    "#d55e00",
    "#f0e442",
    "#000000",
)
OTHER = "#9aa4ae"
WIDTH = 720
LABEL_CHARS = 42


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    tip: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass(frozen=True)
class Rule:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Chart:
    """One chart: `summary` is its text alternative for screen readers."""

    title: str
    summary: str
    width: float
    height: float
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)


def colours(labels: Sequence[str]) -> dict[str, str]:
    """A colour per label, in order; labels past the palette share a grey."""
    return {
        label: PALETTE[i] if i < len(PALETTE) else OTHER
        for i, label in enumerate(labels)
    }


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def nice_step(top: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that covers `top` in about `ticks`."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def stacked_columns(
    title: str,
    days: Sequence[date],
    series: dict[str, Sequence[int]],
    unit: str,
) -> Chart:
    """Columns over time, one segment per category, stacked in the order of `series`."""
    left, right, top, bottom, height = 44, 8, 10, 36, 260
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(days))]
    step = nice_step(max(totals, default=0))
    ceiling = step * max(1, math.ceil(max(totals, default=0) / step))
    chart = Chart(title, _volume_summary(series, unit), WIDTH, height)
    _y_axis(chart, left, top, plot_w, plot_h, step, ceiling, lambda v: f"{v:g}")
    palette = colours(list(series))
    slot = plot_w / max(1, len(days))
    every = max(1, math.ceil(len(days) / 12))
    for i, day in enumerate(days):
        base = top + plot_h
        for label, values in series.items():
            if not values[i]:
                continue
            h = values[i] / ceiling * plot_h
            base -= h
            tip = f"{label}: {values[i]} on the {unit} of {day.isoformat()}"
            x = left + i * slot + slot * 0.1
            chart.rects.append(Rect(x, base, slot * 0.8, h, palette[label], tip))
        if i % every == 0:
            x = left + (i + 0.5) * slot
            chart.labels.append(Label(x, height - 18, day.strftime("%m-%d"), "middle"))
    chart.legend.extend((palette[label], label) for label in series)
    return chart


def _volume_summary(series: dict[str, Sequence[int]], unit: str) -> str:
    parts = [f"{label} {sum(values)}" for label, values in series.items()]
    return f"Cases per {unit} by category; totals: " + ", ".join(parts)


def _y_axis(chart, left, top, plot_w, plot_h, step, ceiling, show) -> None:
    value = 0.0
    while value <= ceiling + 1e-9:
        y = top + plot_h - value / ceiling * plot_h
        chart.rules.append(Rule(left, y, left + plot_w, y))
        chart.labels.append(Label(left - 6, y + 4, show(value), "end"))
        value += step


def horizontal_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    show,
    ceiling: float | None = None,
) -> Chart:
    """One group of bars per row (a bar per series), labels on the left, values at the end.

    `show` turns a value into its text; `ceiling` fixes the scale (1.0 for rates).
    """
    label_w, bar_h, gap, top = 270, 14, 10, 8
    plot_w = WIDTH - label_w - 70
    group_h = bar_h * len(series) + gap
    height = top + group_h * len(rows) + (24 if len(series) > 1 else 4)
    largest = max((v for _, values in rows for v in values if v is not None), default=0)
    scale = ceiling or largest or 1.0
    palette = colours(list(series))
    summary = "; ".join(
        f"{label}: "
        + ", ".join(f"{s} {show(v)}" for s, v in zip(series, values, strict=True))
        for label, values in rows
    )
    chart = Chart(title, summary, WIDTH, height)
    for i, (label, values) in enumerate(rows):
        y = top + i * group_h
        chart.labels.append(Label(label_w - 8, y + group_h / 2, shorten(label), "end"))
        for j, (name, value) in enumerate(zip(series, values, strict=True)):
            if value is None:
                continue
            width = max(1.0, value / scale * plot_w)
            tip = f"{label} — {name}: {show(value)}"
            bar_y = y + j * bar_h
            chart.rects.append(
                Rect(label_w, bar_y, width, bar_h - 2, palette[name], tip)
            )
            chart.labels.append(Label(label_w + width + 4, bar_y + 11, show(value)))
    chart.rules.append(Rule(label_w, top, label_w, top + group_h * len(rows) - gap))
    if len(series) > 1:
        chart.legend.extend((palette[name], name) for name in series)
    return chart
