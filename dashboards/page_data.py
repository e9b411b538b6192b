"""The data behind the pages' charts (drawn in the browser by Chart.js, static/charts.js) and
the research exports: plain dicts and text, built from what `Queries` returns.

Chart times are milliseconds since 1970 (UTC); the browser writes them as clock times in the
dashboard's zone. Each chart's dict names its `type`, which charts.js draws."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from dashboards.analysis import Insights, NightSummary, paired_days_by_factor
from dashboards.dialysis import NADIR_LOW, uf_progress
from dashboards.formatting import channel_name, duration, short_day
from dashboards.queries import Queries
from dashboards.session_analysis import SessionInsights
from dashboards.timebase import parse_time


def _ms(moment: datetime | str) -> int:
    value = parse_time(moment) if isinstance(moment, str) else moment
    return round(value.timestamp() * 1000)


# -- a night ------------------------------------------------------------------------------------


def timeline(data: dict[str, Any], tz: tzinfo) -> dict[str, Any]:
    """One lane per calf on a clock-time axis: cramps, movements, signal problems; marker
    presses on a lane of their own."""
    lanes = [channel_name(c) for c in data["channels"]]
    bars = []
    now = datetime.now(tz)
    for event in data["events"]:
        end = event["end"] or now
        rejected = event["verdict"] == "not_cramp"
        kind = "rejected" if rejected else event["kind"]
        what = "not a cramp (your word)" if rejected else event["kind"]
        bars.append({
            "lane": channel_name(event["channel"]), "kind": kind,
            "from": _ms(event["start"]), "to": _ms(end),
            "label": f"{what}, {duration(event['duration_s'])}"
                     + (f", peak {event['peak_uv']:.0f} µV" if event["peak_uv"] else ""),
            "href": f"/events/{event['event_id']}",
        })  # fmt: skip
    for problem in data["problems"]:
        lane = channel_name(problem["channel"])
        if lane not in lanes:
            continue
        bars.append({"lane": lane, "kind": "problem", "from": _ms(problem["from"]),
                     "to": _ms(problem["to"]),
                     "label": "signal problem: " + ", ".join(problem["problems"])})  # fmt: skip
    markers = [
        {"at": _ms(m["at"]), "label": "marker button pressed"
         + (" (you said: missed cramp)" if m["verdict"] == "missed_cramp" else "")}
        for m in data["markers"]
    ]  # fmt: skip
    if markers:
        lanes.append("button")
    return {"type": "timeline", "from": _ms(data["window"]["from"]),
            "to": _ms(data["window"]["to"]), "lanes": lanes, "bars": bars, "markers": markers}  # fmt: skip


def night_json(q: Queries, day: date) -> dict[str, Any]:
    """The night page's data for the API."""
    data = q.night_page(day)
    out = {k: v for k, v in data.items() if k not in ("summary", "night", "previous", "next")}
    out["night"] = day.isoformat()
    out["summary"] = data["summary"].to_dict()
    out["previous"] = data["previous"].isoformat() if data["previous"] else None
    out["next"] = data["next"].isoformat() if data["next"] else None
    return out


# -- a named session (dialysis, ...) ------------------------------------------------------------

# The session page's two charts share the time axis: both plot areas start and end at the same
# place (their value axes take the same width), so that a cramp lines up with its blood pressure.
ALIGNED = {"axis_px": 84, "pad_right": 64}


def session_chart(data: dict[str, Any], tz: tzinfo) -> dict[str, Any] | None:
    """Blood pressure readings (systolic, diastolic) and the ultrafiltration removed so far, on
    the timeline's clock-time axis; the constant-rate line when no volumes were noted."""
    details, span = data["details"], data["session"].span
    uf, measured = uf_progress(details, span.start, span.end)
    readings = details.blood_pressure
    if not readings and not uf:
        return None
    return {
        "type": "session", **ALIGNED,
        "from": _ms(data["window"]["from"]), "to": _ms(data["window"]["to"]),
        "systolic": [[_ms(r.time), r.systolic] for r in readings],
        "diastolic": [[_ms(r.time), r.diastolic] for r in readings],
        "uf": [[_ms(t), v] for t, v in uf], "uf_measured": measured, "nadir_line": NADIR_LOW,
    }  # fmt: skip


def hours_chart(result: SessionInsights) -> dict[str, Any]:
    """Cramps per session in each hour of treatment (complete sessions)."""
    return {"type": "hours", "hours": [h.to_dict() for h in result.by_hour]}


# -- many nights --------------------------------------------------------------------------------


def nights_chart(
    rows: list[NightSummary], factor: str | None, overlay: dict[str, Any] | None, tz: tzinfo
) -> dict[str, Any]:
    """Cramps per night as bars; nights recorded without cramps and nights without data marked
    as such (never a gap); an intake factor as a line on its own axis."""
    nights = []
    for n in rows:
        if not n.has_data and not n.cramps:
            state = "no_data"
        elif not n.complete:
            state = "incomplete"
        else:
            state = "complete"
        nights.append({
            "night": n.night.isoformat(), "label": short_day(n.night), "cramps": n.cramps,
            "minutes": round(n.cramp_minutes, 1), "state": state,
            "href": f"/nights/{n.night.isoformat()}",
        })  # fmt: skip
    chart: dict[str, Any] = {"type": "nights", "nights": nights}
    if factor and overlay is not None:
        chart["overlay"] = {
            "factor": factor.replace("_", " "),
            "unit": overlay["unit"],
            "values": [overlay["values"].get(n.night.isoformat()) for n in rows],
        }
    return chart


def overlay(q: Queries, factor: str) -> dict[str, Any]:
    """A factor's daily totals by night (lag 0), with its unit; as in the statistics, a day with
    other intake logged but none of this factor is 0, and a day with nothing logged is a gap."""
    found = q.catalogue.find(factor)
    values = {day.isoformat(): per.get(factor, 0.0) for day, per in q.daily_totals().items()}
    return {"unit": found.unit if found else "", "values": values}


def popular_factors(entries: list[Any], factors: list[dict[str, Any]], n: int = 3) -> list[str]:
    """The factors logged most often lately (with quick-adds), for the first quick-add row."""
    with_quick = {f["key"] for f in factors if f["quick_adds"]}
    counts: dict[str, int] = {}
    for entry in entries[:200]:
        if entry.factor in with_quick:
            counts[entry.factor] = counts.get(entry.factor, 0) + 1
    ranked = sorted(counts, key=lambda k: -counts[k])
    fallback = [k for k in ("water", "magnesium", "caffeine") if k not in ranked]
    return (ranked + fallback)[:n]


def weeks(rows: list[NightSummary]) -> list[dict[str, Any]]:
    """The nights by week (weeks start on Monday): for a report too long to list every night."""
    out: list[dict[str, Any]] = []
    for night in rows:
        monday = night.night - timedelta(days=night.night.weekday())
        if not out or out[-1]["week"] != monday:
            out.append({"week": monday, "nights": 0, "recorded": 0, "complete": 0,
                        "cramp_nights": 0, "cramps": 0, "cramp_minutes": 0.0})  # fmt: skip
        week = out[-1]
        week["nights"] += 1
        week["recorded"] += night.has_data
        week["complete"] += night.complete
        week["cramp_nights"] += night.cramps > 0
        week["cramps"] += night.cramps
        week["cramp_minutes"] += night.cramp_minutes
    return out


def report_totals(rows: list[NightSummary]) -> dict[str, Any]:
    """The report's figures: all nights, and per calf."""
    with_data = [n for n in rows if n.has_data]
    per_channel: dict[str, dict[str, float]] = {}
    for night in with_data:
        for channel, figures in night.by_channel.items():
            total = per_channel.setdefault(channel, {"cramps": 0, "cramp_minutes": 0.0,
                                                     "nights": 0})  # fmt: skip
            total["cramps"] += figures["cramps"]
            total["cramp_minutes"] += figures["cramp_minutes"]
            total["nights"] += figures["cramps"] > 0
    weeks = max(len(with_data) / 7.0, 1e-9)
    return {
        "nights": len(rows),
        "with_data": len(with_data),
        "complete": sum(n.complete for n in rows),
        "cramp_nights": sum(n.cramps > 0 for n in with_data),
        "cramps": sum(n.cramps for n in rows),
        "cramp_minutes": round(sum(n.cramp_minutes for n in rows), 1),
        "per_week": sum(n.cramps for n in rows) / weeks if with_data else None,
        "strongest": max((n.strongest_uv for n in rows if n.strongest_uv), default=None),
        "rejected": sum(n.rejected for n in rows),
        "reported": sum(n.reported for n in rows),
        "per_channel": dict(sorted(per_channel.items())),
    }


# -- one event ----------------------------------------------------------------------------------


def envelope_chart(data: dict[str, Any], tz: tzinfo) -> dict[str, Any] | None:
    """The envelope around an event on a clock-time axis, its onset and end marked, and its
    peak (measured at full rate, so at or above the plotted trace) as a line."""
    event, origin = data["event"], data["session_start"]
    trace = event.get("envelope") or {}
    values = trace.get("uv") or []
    t0, dt = trace.get("t0_s"), trace.get("dt_s")
    numbers = (int, float)
    if not isinstance(t0, numbers) or not isinstance(dt, numbers) or dt <= 0:
        return None
    base = _ms(origin)
    points = [
        [base + round((t0 + i * dt) * 1000), v]
        for i, v in enumerate(values)
        if isinstance(v, numbers) and not isinstance(v, bool)
    ]
    if len(points) < 2:
        return None
    return {
        "type": "envelope",
        "points": points,
        "onset": _ms(event["start"]),
        "end": _ms(event["end"]) if event.get("end") else None,
        "peak": event.get("peak_uv"),
        "floor": event.get("floor_uv"),
    }


# -- insights -----------------------------------------------------------------------------------


def factor_charts(
    result: Insights, nights: list[NightSummary], totals: dict, include_incomplete: bool,
    q: Queries,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per factor, intake that day against cramps that night (lag 0): exactly the days the
    statistics use (a day with other intake logged counts 0 of this factor). Points are
    [intake, cramps, day]. Kept until the data change."""
    return q.cached(("factor_charts", include_incomplete),
                    lambda: _factor_charts(result, nights, totals, include_incomplete, q))  # fmt: skip


def _factor_charts(
    result: Insights, nights: list[NightSummary], totals: dict, include_incomplete: bool,
    q: Queries,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    factors = sorted({r.factor for r in result.results})
    by_factor = paired_days_by_factor(nights, totals, factors, 0,
                                      include_incomplete=include_incomplete)  # fmt: skip
    labels = {day: short_day(day) for day, _, _ in by_factor[factors[0]]} if factors else {}
    out = {}
    for factor in factors:
        found = q.catalogue.find(factor)
        out[factor] = {
            "type": "scatter",
            "factor": factor.replace("_", " "),
            "unit": found.unit if found else "",
            "points": [[x, y, labels[day]] for day, x, y in by_factor[factor]],
        }
    return out


# -- research exports (read by `crampwatch evaluate`) --------------------------------------------


def truth_csv(export: dict[str, Any]) -> str:
    """CSV `kind,start_s,end_s,channel` with `#` comment lines (evaluate skips them)."""
    out = io.StringIO()
    out.write(
        f"# crampwatch: the patient's word on the night of {export['night']}, as ground truth\n"
        f"# seconds from {export['origin']} (the start of the night's first recording)\n"
        "# confirmed cramps, and missed cramps reported at a marker press (60 s either side)\n"
        f"# {export['unanswered_cramps']} detected cramp(s) were not answered and are left out\n"
    )
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "start_s", "end_s", "channel"])
    for row in export["truth"]:
        writer.writerow([row["kind"], row["start_s"], row["end_s"], row["channel"]])
    return out.getvalue()


def detections_jsonl(export: dict[str, Any], night: NightSummary) -> str:
    """The answered detections as event lines, and a summary line with the recording length."""
    lines = [json.dumps(d) for d in export["detections"]]
    summary = {"type": "summary", "night": export["night"], "origin": export["origin"],
               "duration_s": round(night.recorded_minutes * 60, 3)}  # fmt: skip
    lines.append(json.dumps(summary))
    return "\n".join(lines) + "\n"
