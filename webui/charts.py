"""Charts drawn on the server as SVG geometry (rectangles and labels): readable without JavaScript, no package."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

PALETTE = {
    "allow": "#17803d",
    "hold": "#d29922",
    "deny": "#b42318",
    "rate_limited": "#7a5af8",
}
SERIES_COLOURS = ("#1f5fbf", "#17803d", "#d29922", "#7a5af8", "#b42318", "#0e9384", "#c11574", "#5d6b7a")


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str


@dataclass
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass
class Chart:
    width: int
    height: int
    rects: list[Rect] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    gridlines: list[tuple[float, str]] = field(default_factory=list)  # (y, value label)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (name, colour)
    empty: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10.0 ** len(str(int(value))) / 10
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * factor >= value:
            return step * factor
    return float(value)


def stacked_columns(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    colours: dict[str, str] | None = None,
    width: int = 760,
    height: int = 220,
    label_every: int = 1,
    category_label: Callable[[str], str] = str,
    value_label: Callable[[float], str] = lambda v: f"{v:g}",
) -> Chart:
    left, bottom, top = 44.0, 22.0, 8.0
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = _nice_max(max(totals, default=0))
    chart = Chart(width, height, empty=not any(totals))
    names = list(series)
    palette = colours or {}
    chart.legend = [(n, palette.get(n, SERIES_COLOURS[i % len(SERIES_COLOURS)])) for i, n in enumerate(names)]
    colour_of = dict(chart.legend)
    for step in range(5):
        value = peak * step / 4
        chart.gridlines.append((top + plot_h - plot_h * step / 4, value_label(value)))
    slot = plot_w / max(len(categories), 1)
    bar_w = max(2.0, slot * 0.7)
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h
        for name in names:
            value = series[name][i]
            if value <= 0:
                continue
            h = plot_h * value / peak
            y -= h
            title = f"{category_label(category)}: {value_label(value)} {name}"
            chart.rects.append(Rect(round(x, 1), round(y, 1), round(bar_w, 1), round(h, 1), colour_of[name], title))
        if i % label_every == 0:
            chart.labels.append(Label(round(x + bar_w / 2, 1), height - 6, category_label(category)))
    return chart


def horizontal_bars(
    items: Sequence[tuple[str, float]], *, width: int = 520, row: int = 26, colour: str = "#d29922"
) -> Chart:
    label_w = 170
    height = max(row * len(items), row) + 4
    chart = Chart(width, height, empty=not items)
    peak = max((v for _, v in items), default=0) or 1
    for i, (name, value) in enumerate(items):
        y = i * row + 4
        w = (width - label_w - 50) * value / peak
        chart.rects.append(Rect(label_w, y, round(max(w, 1), 1), row - 8, colour, f"{name}: {value:g}"))
        chart.labels.append(Label(label_w - 8, y + row / 2 + 1, name, "end"))
        chart.labels.append(Label(label_w + w + 6, y + row / 2 + 1, f"{value:g}", "start"))
    return chart
