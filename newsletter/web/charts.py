"""Small server-drawn SVG charts (no JavaScript, no CDN): grouped bars and a line."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 16, 40


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1
    step = 1.0
    while step * 10 < value:
        step *= 10
    for mult in (1, 2, 2.5, 5, 10):
        if step * mult >= value:
            return step * mult
    return step * 10


def _axes(top: float, fmt: str) -> list[str]:
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        label = fmt.format(top * i / 4)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9f2"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#5b6475">{escape(label)}</text>'
        )
    return parts


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
    top = _nice_max(max((v for vals in series.values() for v in vals), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    groups = max(len(labels), 1)
    group_w = plot_w / groups
    bar_w = max(1.0, group_w * 0.8 / max(len(series), 1))
    parts = _axes(top, "{:.0f}")
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
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle" font-size="11" '
            f'fill="#5b6475">{escape(labels[g])}</text>'
        )
    parts.append(_legend(list(series), colors))
    return _svg(title, parts)


def line_chart(
    title: str, labels: Sequence[str], values: Sequence[float | None], color: str = "#2454d6"
) -> Markup:
    """Return an SVG line of fractions 0..1 (drawn as percent); gaps where a value is None."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(values), 1)
    parts = _axes(100, "{:.0f}%")
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
            5,
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
