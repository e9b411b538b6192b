"""Small inline SVG charts, drawn on the server (no script libraries, works offline and in print).
Every text that goes into a chart is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT, PAD = 720, 200, 36


def _frame(inner: str, title: str, width: int = WIDTH, height: int = HEIGHT) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{inner}</svg>"
    )


def envelope_trace(t0_s: float, dt_s: float, values: Sequence[float | None], onset_s: float,
                   end_s: float | None, title: str) -> str:  # fmt: skip
    """The envelope around an event, the event shaded."""
    points = [(t0_s + i * dt_s, v) for i, v in enumerate(values) if v is not None]
    if len(points) < 2:
        return '<p class="muted">No envelope trace for this event.</p>'
    t_lo, t_hi = points[0][0], points[-1][0]
    v_hi = max(v for _, v in points) or 1.0
    x = lambda t: PAD + (t - t_lo) / max(t_hi - t_lo, 1e-9) * (WIDTH - 2 * PAD)  # noqa: E731
    y = lambda v: HEIGHT - PAD - v / v_hi * (HEIGHT - 2 * PAD)  # noqa: E731
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    shade_end = x(min(end_s if end_s is not None else t_hi, t_hi))
    inner = (
        f'<rect class="event" x="{x(max(onset_s, t_lo)):.1f}" y="{PAD}" '
        f'width="{max(shade_end - x(max(onset_s, t_lo)), 1):.1f}" height="{HEIGHT - 2 * PAD}"/>'
        f'<polyline class="trace" points="{line}"/>'
        f'<text x="{PAD}" y="{PAD - 8}">{v_hi:.0f} µV</text>'
        f'<text x="{PAD}" y="{HEIGHT - 10}">{escape(f"{t_lo:.0f} s")}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" text-anchor="end">{t_hi:.0f} s</text>'
    )
    return _frame(inner, title)


def bars(labels: Sequence[str], values: Sequence[float], overlay: Sequence[float | None] | None,
         title: str, overlay_label: str = "") -> str:  # fmt: skip
    """Cramps per night as bars, optionally with an intake line over them (own scale)."""
    n = len(values)
    if n == 0:
        return '<p class="muted">No nights yet.</p>'
    v_hi = max(max(values), 1.0)
    step = (WIDTH - 2 * PAD) / n
    parts = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = value / v_hi * (HEIGHT - 2 * PAD)
        parts.append(
            f'<rect class="bar" x="{PAD + i * step + 1:.1f}" y="{HEIGHT - PAD - h:.1f}" '
            f'width="{max(step - 2, 1):.1f}" height="{h:.1f}"><title>{escape(label)}: '
            f"{value:g}</title></rect>"
        )
    if overlay and any(v is not None for v in overlay):
        o_hi = max((v for v in overlay if v is not None), default=1.0) or 1.0
        points = " ".join(
            f"{PAD + (i + 0.5) * step:.1f},{HEIGHT - PAD - v / o_hi * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(overlay)
            if v is not None
        )
        parts.append(f'<polyline class="overlay" points="{points}"/>')
        parts.append(
            f'<text class="overlay-label" x="{WIDTH - PAD}" y="{PAD - 8}" text-anchor="end">'
            f"{escape(overlay_label)} (max {o_hi:g})</text>"
        )
    parts.append(f'<text x="{PAD}" y="{PAD - 8}">{v_hi:g} cramps</text>')
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 10}">{escape(labels[0])}</text>')
    parts.append(
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" text-anchor="end">{escape(labels[-1])}</text>'
    )
    return _frame("".join(parts), title)


def scatter(xs: Sequence[float], ys: Sequence[float], title: str, x_label: str) -> str:
    """Intake (x) against cramps that night (y), one dot per night."""
    if not xs:
        return '<p class="muted">No paired nights yet.</p>'
    x_hi, y_hi = max(max(xs), 1e-9), max(max(ys), 1.0)
    dots = "".join(
        f'<circle class="dot" cx="{PAD + x / x_hi * (WIDTH - 2 * PAD):.1f}" '
        f'cy="{HEIGHT - PAD - y / y_hi * (HEIGHT - 2 * PAD):.1f}" r="4"/>'
        for x, y in zip(xs, ys, strict=True)
    )
    labels = (
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 10}" text-anchor="end">{escape(x_label)} '
        f"(max {x_hi:g})</text>"
        f'<text x="{PAD}" y="{PAD - 8}">{y_hi:g} cramps</text>'
    )
    return _frame(dots + labels, title)
