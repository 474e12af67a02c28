"""Small server-drawn SVG charts (no JavaScript, no CDN): grouped bars and a line."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 40


def nice_ticks(value: float, most: int = 5, smallest: float = 1) -> list[float]:
    """Return axis ticks from 0 to at least ``value`` in steps of 1, 2 or 5 × 10^n.

    At most ``most`` steps; never a step below ``smallest`` (counts do not come in thirds).
    """
    top = max(value, smallest)
    magnitude = 10 ** math.floor(math.log10(top / most)) if top / most > 0 else smallest
    step = smallest
    for power in (magnitude, magnitude * 10):
        found = next((m * power for m in (1, 2, 5) if m * power * most >= top), None)
        if found is not None:
            step = max(found, smallest)
            break
    count = max(1, math.ceil(top / step - 1e-9))
    return [round(step * i, 9) for i in range(count + 1)]


def _tick_label(value: float, suffix: str) -> str:
    return f"{value:,.0f}{suffix}" if value == int(value) else f"{value:g}{suffix}"


def _axes(ticks: Sequence[float], suffix: str = "") -> list[str]:
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    top = ticks[-1]
    for tick in ticks:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9f2"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6475">{escape(_tick_label(tick, suffix))}</text>'
        )
    return parts


def _short(label: str, room: float) -> str:
    """Return the label cut to the room it has on the axis (about 6.5 units a letter)."""
    most = max(3, int(room / 6.5))
    return label if len(label) <= most else label[: most - 1].rstrip() + "…"


def _legend(names: Sequence[str], colors: Sequence[str]) -> str:
    items = []
    x = LEFT
    for name, color in zip(names, colors, strict=True):
        items.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 5}" font-size="11" fill="#1d2330">'
            f"{escape(name)}</text>"
        )
        x += 24 + 7 * len(name)
    return "".join(items)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    colors: Sequence[str],
) -> Markup:
    """Return an SVG of grouped bars: one group per label, one bar per series."""
    ticks = nice_ticks(max((v for vals in series.values() for v in vals), default=0))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    groups = max(len(labels), 1)
    group_w = plot_w / groups
    bar_w = max(1.0, group_w * 0.8 / max(len(series), 1))
    parts = _axes(ticks)
    for s, (name, values) in enumerate(series.items()):
        for g, value in enumerate(values):
            h = plot_h * value / top
            x = LEFT + g * group_w + group_w * 0.1 + s * bar_w
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{colors[s]}"><title>{escape(labels[g])} · '
                f"{escape(name)}: {value:g}</title></rect>"
            )
    step = max(1, groups // 8)
    for g in range(0, len(labels), step):
        x = LEFT + g * group_w + group_w / 2
        parts.append(
            f'<text class="label" x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" '
            f'font-size="11" fill="#5b6475">{escape(_short(labels[g], group_w * step))}</text>'
        )
    parts.append(_legend(list(series), colors))
    return _svg(title, parts)


def line_chart(
    title: str, labels: Sequence[str], values: Sequence[float | None], color: str = "#2454d6"
) -> Markup:
    """Return an SVG line of fractions 0..1 (drawn as percent); gaps where a value is None."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(values), 1)
    parts = _axes(nice_ticks(100), "%")
    points = []
    for i, value in enumerate(values):
        if value is None:
            continue
        x = LEFT + plot_w * (i + 0.5) / n
        y = TOP + plot_h - plot_h * value
        points.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
            f"<title>{escape(labels[i])}: {value * 100:.0f}%</title></circle>"
        )
    if len(points) > 1:
        parts.insert(
            len(nice_ticks(100)),
            f'<polyline class="line" points="{" ".join(points)}" fill="none" '
            f'stroke="{color}" stroke-width="2.5"/>',
        )
    step = max(1, n // 8)
    for i in range(0, len(labels), step):
        x = LEFT + plot_w * (i + 0.5) / n
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="11" '
            f'fill="#5b6475">{escape(labels[i])}</text>'
        )
    return _svg(title, parts)


def _svg(title: str, parts: list[str]) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}"'
        f' width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
