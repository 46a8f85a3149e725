"""Charts as inline SVG rendered on the server (no script, no CDN): lines over time, grouped
bars of a distribution, and horizontal bars. Each returns markup safe to put in a page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["bar_chart", "grouped_bars", "line_chart"]

PALETTE = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777")
WIDTH, HEIGHT, PAD = 640, 200, 36


def _svg(body: str, title: str, height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f"{body}</svg>"
    )


def _legend(names: Sequence[str], y: float) -> str:
    parts = []
    for i, name in enumerate(names):
        x = PAD + i * 120
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="{y}" class="legend">{escape(name)}</text>'
        )
    return "".join(parts)


def _axes(top: int) -> str:
    bottom = HEIGHT - PAD
    return (
        f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - 8}" y2="{bottom}" class="axis"/>'
        f'<line x1="{PAD}" y1="{bottom}" x2="{PAD}" y2="{PAD}" class="axis"/>'
        f'<text x="{PAD - 6}" y="{PAD + 4}" class="tick" text-anchor="end">{top}</text>'
        f'<text x="{PAD - 6}" y="{bottom}" class="tick" text-anchor="end">0</text>'
    )


def _point(x: float, y: float) -> str:
    """Plot coordinates of (x, y), both as fractions of the axes."""
    return f"{PAD + (WIDTH - PAD - 8) * x:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * y:.1f}"


def line_chart(times: Sequence[float], series: Mapping[str, Sequence[int]], title: str) -> Markup:
    """One line per series over ``times`` (Unix seconds, ascending); '' markup when empty."""
    if len(times) < 1 or not series:
        return _svg('<text x="20" y="40" class="empty">no samples yet</text>', title, 60)
    top = max([1, *(max(v) for v in series.values() if v)])
    span = times[-1] - times[0]
    lines = []
    for i, values in enumerate(series.values()):
        points = " ".join(
            _point((t - times[0]) / span if span > 0 else 1.0, v / top)
            for t, v in zip(times, values, strict=True)
        )
        lines.append(f'<polyline points="{points}" fill="none" stroke-width="2" '
                     f'stroke="{PALETTE[i % len(PALETTE)]}"/>')  # fmt: skip
    minutes = (times[-1] - times[0]) / 60
    caption = f'<text x="{WIDTH - 8}" y="{HEIGHT - PAD + 16}" class="tick" text-anchor="end">' \
              f"last {minutes:.1f} min</text>"  # fmt: skip
    return _svg(_axes(top) + "".join(lines) + caption + _legend(list(series), HEIGHT - 6), title)


def grouped_bars(labels: Sequence[str], groups: Mapping[str, Sequence[int]],
                 title: str) -> Markup:  # fmt: skip
    """Bars per label (x axis), one colour per group (e.g. buckets x pools)."""
    if not groups:
        return _svg('<text x="20" y="40" class="empty">no data yet</text>', title, 60)
    top = max([1, *(max(v) for v in groups.values() if v)])
    slot = (WIDTH - PAD - 8) / max(1, len(labels))
    bar = max(2.0, (slot - 6) / len(groups))
    parts = [_axes(top)]
    for g, values in enumerate(groups.values()):
        for i, value in enumerate(values):
            height = (HEIGHT - 2 * PAD) * value / top
            x = PAD + i * slot + 3 + g * bar
            parts.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{bar - 1:.1f}" '
                         f'height="{height:.1f}" fill="{PALETTE[g % len(PALETTE)]}">'
                         f"<title>{escape(labels[i])}: {value}</title></rect>")  # fmt: skip
    for i, label in enumerate(labels):
        parts.append(f'<text x="{PAD + i * slot + slot / 2:.1f}" y="{HEIGHT - PAD + 14}" '
                     f'class="tick" text-anchor="middle">{escape(label)}</text>')  # fmt: skip
    return _svg("".join(parts) + _legend(list(groups), HEIGHT - 6), title)


def bar_chart(values: Mapping[str, float], title: str) -> Markup:
    """One horizontal bar per name, labelled with its value."""
    if not values:
        return _svg('<text x="20" y="40" class="empty">none</text>', title, 60)
    top = max([1.0, *values.values()])
    row, parts = 24, []
    for i, (name, value) in enumerate(values.items()):
        y = 8 + i * row
        width = (WIDTH - 200) * value / top
        parts.append(f'<text x="110" y="{y + 14}" class="tick" text-anchor="end">{escape(name)}'
                     f'</text><rect x="118" y="{y}" width="{width:.1f}" height="18" '
                     f'fill="{PALETTE[3]}"/><text x="{124 + width:.1f}" y="{y + 14}" '
                     f'class="tick">{value:g}</text>')  # fmt: skip
    return _svg("".join(parts), title, 16 + row * len(values))
