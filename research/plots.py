"""Night plots: each channel's envelope on a clock-time axis, cramps and movements shaded,
signal-lost stretches and marker presses shown, the night's counts in the title."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from research.files import write_bytes_atomically
from research.night import Night

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_FORMATS = ("png", "svg", "pdf")
_FLOOR_UV = 0.1  # envelope values are drawn from here up on the logarithmic axis
_MIN_MARK_FRACTION = 0.0025  # a cramp or movement is drawn at least this wide, to stay visible
_COLOURS = {
    "envelope": "#1f5fa8",
    "band": "#9cc3ea",
    "cramp": "#d62728",
    "movement": "#f28e2b",
    "lost": "#7f7f7f",
    "problem": "#bdbdbd",
    "marker": "#7b3294",
}


class PlotError(ValueError):
    """The plot cannot be made as asked; the message says why."""


def plot_format(path: Path) -> str:
    """The output format from the file's suffix."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in PLOT_FORMATS:
        raise PlotError(
            f"{path}: unknown plot format {path.suffix or '(no suffix)'}; "
            f"name the file .{', .'.join(PLOT_FORMATS)}"
        )
    return fmt


def plot_night(night: Night, out: Path, *, tz: tzinfo | None = None, dpi: int = 110) -> Path:
    """Draw the night to `out` (.png, .svg or .pdf), written whole or not at all."""
    fmt = plot_format(out)
    figure = night_figure(night, tz=tz)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    write_bytes_atomically(out, buffer.getvalue())
    return out


def night_figure(night: Night, *, tz: tzinfo | None = None) -> Figure:
    """The night as a matplotlib Figure (no global pyplot state: safe in workers)."""
    from matplotlib.figure import Figure

    channels = night.channels or ("(no channel)",)
    figure = Figure(figsize=(12, 1.5 + 2.3 * len(channels)), layout="constrained")
    axes = figure.subplots(len(channels), 1, sharex=True, squeeze=False)[:, 0]
    clock = _Clock(night.start, tz, night.duration_s)
    span = max(night.duration_s, 1.0)
    for ax, channel in zip(axes, channels, strict=True):
        _draw_channel(ax, night, channel, clock, span)
    clock.format_axis(axes[-1])
    axes[-1].set_xlim(clock.x(0.0), clock.x(night.duration_s))
    figure.suptitle(_title(night, clock), fontsize=11, x=0.01, ha="left")
    figure.legend(
        handles=_legend_handles(night),
        loc="outside lower center",
        ncol=6,
        frameon=False,
        fontsize=9,
    )
    return figure


class _Clock:
    """Seconds from the start -> x values: clock time when the start is known, else the time
    since the start in seconds, minutes or hours (whichever suits the recording's length)."""

    def __init__(self, start: datetime | None, tz: tzinfo | None, duration_s: float) -> None:
        self.duration_s = duration_s
        self.start = start.astimezone(tz) if start is not None else None
        self.tz = tz if tz is not None else (self.start.tzinfo if self.start else None)
        self.unit_s = 1.0 if duration_s < 600 else 60.0 if duration_s < 3 * 3600 else 3600.0

    def x(self, seconds: float | np.ndarray) -> float | np.ndarray:
        if self.start is None:
            return np.asarray(seconds) / self.unit_s
        from matplotlib.dates import date2num

        return date2num(self.start) + np.asarray(seconds) / 86400.0

    def _format(self) -> str:
        return "%H:%M:%S" if self.duration_s < 1800 else "%H:%M"

    def format_axis(self, ax: Axes) -> None:
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        if self.start is None:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 2.5, 5, 10]))
            if self.unit_s == 3600.0:
                ax.xaxis.set_major_formatter(
                    FuncFormatter(lambda h, _pos: f"{int(h)}:{round((h % 1) * 60):02d}")
                )
            unit = {1.0: "s", 60.0: "min", 3600.0: "h:mm"}[self.unit_s]
            ax.set_xlabel(f"time from the start of the recording ({unit})")
            return
        from matplotlib.dates import AutoDateLocator, DateFormatter

        ax.xaxis.set_major_locator(AutoDateLocator(tz=self.tz, minticks=6, maxticks=14))
        ax.xaxis.set_major_formatter(DateFormatter(self._format(), tz=self.tz))
        zone = self.start.strftime("%Z") or self.start.strftime("UTC%z")  # type: ignore[union-attr]
        ax.set_xlabel(f"clock time ({zone})")

    def label(self, seconds: float) -> str:
        return (self.start + timedelta(seconds=seconds)).strftime(self._format())  # type: ignore[operator]


def _draw_channel(ax: Axes, night: Night, channel: str, clock: _Clock, span_s: float) -> None:
    from matplotlib.ticker import FuncFormatter, LogFormatter
    from matplotlib.transforms import blended_transform_factory

    strip = blended_transform_factory(ax.transData, ax.transAxes)
    min_width = span_s * _MIN_MARK_FRACTION
    for start, end in night.signal_lost.get(channel, []):
        ax.axvspan(
            clock.x(start),
            clock.x(end),
            facecolor=_COLOURS["lost"],
            alpha=0.25,
            hatch="///",
            edgecolor=_COLOURS["lost"],
            linewidth=0,
        )
    if not night.signal_lost:
        for start, end, _problems in night.problems.get(channel, []):
            ax.axvspan(clock.x(start), clock.x(end), color=_COLOURS["problem"], alpha=0.35, lw=0)
    index = night.channels.index(channel) if channel in night.channels else None
    if night.envelope is not None and index is not None and len(night.envelope.t_s):
        env = night.envelope
        t = clock.x(env.t_s + env.bin_s / 2)
        low, high = _drawable(env.low[:, index]), _drawable(env.high[:, index])
        # A bin that is partly flat (electrode off) has no low end to draw: band it from its top.
        low = np.where(np.isnan(low), high, low)
        ax.fill_between(t, low, high, color=_COLOURS["band"], lw=0, step="mid")
        ax.plot(
            t,
            _drawable(env.mean[:, index]),
            color=_COLOURS["envelope"],
            lw=0.7,
            drawstyle="steps-mid",
        )
    else:
        for event in night.events:
            trace = event.get("envelope")
            if event["channel"] == channel and trace and trace.get("uv"):
                times = trace["t0_s"] + trace["dt_s"] * np.arange(len(trace["uv"]))
                values = _drawable(np.asarray(trace["uv"], dtype=float))
                ax.plot(clock.x(times), values, color=_COLOURS["envelope"], lw=0.7)
    for event in night.events:
        if event["channel"] != channel or event.get("end_s") is None:
            continue
        start, end = float(event["start_s"]), float(event["end_s"])
        drawn_end = max(end, start + min_width)
        if event["kind"] == "cramp":
            ax.axvspan(clock.x(start), clock.x(end), color=_COLOURS["cramp"], alpha=0.18, lw=0)
            ax.fill_between(
                [clock.x(start), clock.x(drawn_end)],
                0.9,
                1.0,
                color=_COLOURS["cramp"],
                transform=strip,
                lw=0,
            )
        else:
            ax.fill_between(
                [clock.x(start), clock.x(drawn_end)],
                0.0,
                0.07,
                color=_COLOURS["movement"],
                transform=strip,
                lw=0,
            )
    for at_s in night.markers:
        ax.axvline(clock.x(at_s), color=_COLOURS["marker"], lw=1.0, ls="--")
        ax.plot(
            [clock.x(at_s)],
            [0.97],
            marker="v",
            color=_COLOURS["marker"],
            transform=strip,
            clip_on=False,
            markersize=6,
        )
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))  # 10, not 10^1
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    ax.set_ylabel("envelope (µV)")
    ax.grid(True, which="major", axis="both", color="#e6e6e6", lw=0.6)
    ax.set_axisbelow(True)
    ax.text(
        0.005,
        0.86,
        _channel_line(night, channel),
        transform=ax.transAxes,
        fontsize=9,
        va="top",
        ha="left",
        bbox={"facecolor": "white", "alpha": 0.8, "lw": 0, "pad": 2},
    )


def _drawable(values: np.ndarray) -> np.ndarray:
    """Values for a logarithmic axis: a flat (0 uV, electrode off) stretch is left out."""
    return np.where(values >= _FLOOR_UV, values, np.nan)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _counts(cramps: int, cramp_s: float, movements: int, lost_s: float | None) -> str:
    parts = [
        f"{cramps} cramp{'s' * (cramps != 1)}" + (f" ({_duration(cramp_s)})" if cramps else "")
    ]
    parts.append(f"{movements} movement{'s' * (movements != 1)}")
    if lost_s is not None:
        parts.append(f"signal lost {_duration(lost_s)}" if lost_s >= 0.5 else "no signal lost")
    return ", ".join(parts)


def _channel_line(night: Night, channel: str) -> str:
    figures = night.figures.get(channel, {})
    cramps = figures.get("cramps", night.count("cramp", channel))
    movements = figures.get("movements", night.count("movement", channel))
    return f"{channel}: " + _counts(
        cramps, float(figures.get("cramp_s", 0.0)), movements, figures.get("signal_lost_s")
    )


def _title(night: Night, clock: _Clock) -> str:
    figures = night.figures.values()
    cramps = sum(int(f.get("cramps", 0)) for f in figures)
    cramp_s = sum(float(f.get("cramp_s", 0.0)) for f in figures)
    movements = sum(int(f.get("movements", 0)) for f in figures)
    lost = [float(f["signal_lost_s"]) for f in figures if "signal_lost_s" in f]
    when = _duration(night.duration_s)
    if clock.start is not None:
        when = f"{clock.start:%a %d %b %Y}, {clock.label(0)} to {clock.label(night.duration_s)} ({when})"
    counts = _counts(cramps, cramp_s, movements, max(lost) if lost else None)
    if night.markers:
        counts += f", {len(night.markers)} marker press{'es' * (len(night.markers) != 1)}"
    source = (
        ""
        if night.envelope is not None
        else "   (from the events file: envelope around events only)"
    )
    return f"{night.name}: {when}\n{counts}{source}"


def _legend_handles(night: Night) -> list[Artist]:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D(
            [],
            [],
            color=_COLOURS["envelope"],
            lw=1.2,
            label="envelope (mean; band: min-max)" if night.envelope else "envelope around events",
        ),
        Patch(color=_COLOURS["cramp"], alpha=0.6, label="cramp"),
        Patch(color=_COLOURS["movement"], label="movement"),
    ]
    if night.signal_lost or not night.problems:
        handles.append(
            Patch(
                facecolor=_COLOURS["lost"],
                alpha=0.35,
                hatch="///",
                edgecolor=_COLOURS["lost"],
                label="signal lost",
            )
        )
    else:
        handles.append(Patch(color=_COLOURS["problem"], alpha=0.6, label="signal problem"))
    if night.markers:
        handles.append(
            Line2D([], [], color=_COLOURS["marker"], ls="--", marker="v", label="marker press")
        )
    return handles
