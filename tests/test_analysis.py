"""Dashboard analysis: nights, summaries, daily intake, correlations, BH, the doctor-visit notice."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from dashboards import analysis
from dashboards.analysis import (
    CrampRecord,
    IntakeRecord,
    NightSummary,
    SessionRecord,
    bh_adjust,
    daily_totals,
    frequent_cramps_notice,
    insights,
    night_of,
    nights_of,
    spearman_columns,
    summarize_nights,
)

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [
    ZoneInfo(name)
    for name in (
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Apia",
    )
]


def berlin(*args: int) -> datetime:
    """A Berlin wall-clock time, as an aware UTC datetime."""
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


def cramp(
    start: datetime,
    seconds: float,
    *,
    channel: str = "left",
    kind: str = "cramp",
    peak: float = 100,
) -> CrampRecord:
    return CrampRecord(
        event_id=f"{channel}-{start.isoformat()}-{kind}",
        channel=channel,
        kind=kind,
        start=start,
        end=start + timedelta(seconds=seconds),
        duration_s=seconds,
        peak_uv=peak,
    )


def session(start: datetime, hours: float, **good_hours: float) -> SessionRecord:
    good = {channel: h * 3600 for channel, h in good_hours.items()}
    return SessionRecord(device="pi", session_start=start, recorded_s=hours * 3600, good_s=good)


def night(day: date, cramps: int, *, complete: bool = True, has_data: bool = True) -> NightSummary:
    return NightSummary(
        night=day,
        cramps=cramps,
        cramp_minutes=2.0 * cramps,
        strongest_uv=100.0 if cramps else None,
        first_cramp=None,
        movements=0,
        good_minutes=420.0 if complete else 60.0 if has_data else 0.0,
        recorded_minutes=480.0 if has_data else 0.0,
        sessions=1 if has_data else 0,
        has_data=has_data,
        complete=complete and has_data,
    )


D0 = date(2024, 3, 1)


def days(n: int, start: date = D0) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def result(ins: analysis.Insights, factor: str, lag: int) -> analysis.FactorInsight:
    (found,) = [r for r in ins.results if r.factor == factor and r.lag == lag]
    return found


# --- night_of ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ((2024, 1, 15, 17, 59), None),
        ((2024, 1, 15, 18, 0), date(2024, 1, 15)),
        ((2024, 1, 15, 23, 59), date(2024, 1, 15)),
        ((2024, 1, 16, 0, 0), date(2024, 1, 15)),
        ((2024, 1, 16, 3, 30), date(2024, 1, 15)),
        ((2024, 1, 16, 11, 59), date(2024, 1, 15)),
        ((2024, 1, 16, 12, 0), None),
        ((2024, 12, 31, 23, 0), date(2024, 12, 31)),
        ((2025, 1, 1, 2, 0), date(2024, 12, 31)),
    ],
)
def test_night_of_edges(local: tuple[int, ...], expected: date | None) -> None:
    assert night_of(berlin(*local), BERLIN) == expected


def test_night_of_spring_forward_in_berlin() -> None:
    # 2024-03-31 02:00 CET -> 03:00 CEST: the night of 30 March is 17 hours long.
    assert night_of(datetime(2024, 3, 30, 16, 59, tzinfo=UTC), BERLIN) is None  # 17:59 CET
    assert night_of(datetime(2024, 3, 30, 17, 0, tzinfo=UTC), BERLIN) == date(2024, 3, 30)
    assert night_of(datetime(2024, 3, 31, 1, 30, tzinfo=UTC), BERLIN) == date(2024, 3, 30)
    assert night_of(datetime(2024, 3, 31, 9, 59, tzinfo=UTC), BERLIN) == date(2024, 3, 30)
    # 10:30 UTC is 12:30 CEST (a fixed +1 h would call it 11:30, still night).
    assert night_of(datetime(2024, 3, 31, 10, 0, tzinfo=UTC), BERLIN) is None
    assert night_of(datetime(2024, 3, 31, 10, 30, tzinfo=UTC), BERLIN) is None
    assert night_of(datetime(2024, 3, 31, 16, 0, tzinfo=UTC), BERLIN) == date(2024, 3, 31)


def test_night_of_fall_back_in_berlin() -> None:
    # 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice, both in the night of 26 October.
    assert night_of(datetime(2024, 10, 27, 0, 30, tzinfo=UTC), BERLIN) == date(2024, 10, 26)
    assert night_of(datetime(2024, 10, 27, 1, 30, tzinfo=UTC), BERLIN) == date(2024, 10, 26)
    assert night_of(datetime(2024, 10, 27, 10, 59, tzinfo=UTC), BERLIN) == date(2024, 10, 26)
    assert night_of(datetime(2024, 10, 27, 11, 0, tzinfo=UTC), BERLIN) is None  # 12:00 CET
    assert night_of(datetime(2024, 10, 27, 16, 59, tzinfo=UTC), BERLIN) is None
    assert night_of(datetime(2024, 10, 27, 17, 0, tzinfo=UTC), BERLIN) == date(2024, 10, 27)


def test_night_of_needs_an_aware_moment() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        night_of(datetime(2024, 1, 1, 22), BERLIN)


moments = st.datetimes(
    min_value=datetime(2010, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@given(moment=moments, zone=st.sampled_from(ZONES))
def test_night_of_matches_its_definition(moment: datetime, zone: ZoneInfo) -> None:
    local = moment.astimezone(zone)
    got = night_of(moment, zone)
    if got is None:
        assert 12 <= local.hour < 18
    else:
        start = datetime(got.year, got.month, got.day, 18).replace(tzinfo=zone)
        end = (start + timedelta(days=1)).replace(hour=12)
        assert start <= local < end


@settings(max_examples=60)
@given(
    start=moments,
    span_days=st.integers(1, 1100),
    fractions=st.lists(st.floats(0, 1), min_size=1, max_size=400),
    zone=st.sampled_from(ZONES),
)
def test_nights_of_vectorised_matches_night_of(
    start: datetime, span_days: int, fractions: list[float], zone: ZoneInfo
) -> None:
    # Dense lists (more moments than days) take the per-day offset grid; sparse ones convert each.
    stamps = [start + timedelta(days=span_days * f) for f in fractions]
    expected = [night_of(m, zone) for m in stamps]
    got = nights_of(stamps, zone).tolist()
    assert got == [d.toordinal() if d else -1 for d in expected]


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_nights_of_dense_across_offset_changes(zone: ZoneInfo) -> None:
    # Every quarter hour, and a microsecond before it, over a winter and spring: DST both ways,
    # Lord Howe's half-hour shift, Samoa skipping 30 December 2011; offsets change exactly on these.
    start = datetime(2011, 10, 1, tzinfo=UTC)
    quarters = [start + timedelta(minutes=15 * i) for i in range(20_000)]
    stamps = quarters + [m - timedelta(microseconds=1) for m in quarters]
    expected = [d.toordinal() if (d := night_of(m, zone)) else -1 for m in stamps]
    assert nights_of(stamps, zone).tolist() == expected


# --- nightly summaries ------------------------------------------------------------------------


def test_summaries_count_cramps_and_mark_nights_without_data() -> None:
    cramps = [
        cramp(berlin(2024, 1, 1, 23, 10), 120, peak=150),
        cramp(berlin(2024, 1, 1, 23, 11), 120, channel="right", peak=300),  # same cramp, other calf
        cramp(berlin(2024, 1, 2, 4, 0), 60, peak=90),
        cramp(berlin(2024, 1, 2, 4, 30), 3, kind="movement"),
        cramp(berlin(2024, 1, 2, 14, 0), 60),  # daytime: no night
        cramp(berlin(2024, 1, 4, 2, 0), 30),  # night of 3 Jan: a cramp, but no session
    ]
    sessions = [
        session(berlin(2024, 1, 1, 22, 0), 8, left=7, right=3),
        session(berlin(2024, 1, 2, 22, 30), 3, left=1, right=2),  # short night: incomplete
    ]
    nights = summarize_nights(cramps, sessions, BERLIN, last=date(2024, 1, 5))
    assert [n.night for n in nights] == days(5, date(2024, 1, 1))
    first, second, third, fourth, fifth = nights

    assert first.cramps == 2  # overlapping events on two channels are one cramp
    assert first.cramp_minutes == pytest.approx(3.0 + 1.0)  # 23:10-23:13 and 04:00-04:01
    assert first.strongest_uv == 300
    assert first.first_cramp == datetime(2024, 1, 1, 23, 10, tzinfo=BERLIN)
    assert first.first_cramp.utcoffset() == timedelta(hours=1)  # local time
    assert first.movements == 1
    assert first.good_minutes == pytest.approx(7 * 60)  # best channel, not the mean
    assert first.recorded_minutes == pytest.approx(8 * 60)
    assert first.has_data and first.complete

    assert second.cramps == 0 and second.has_data and not second.complete
    assert second.good_minutes == pytest.approx(120)
    assert second.strongest_uv is None and second.first_cramp is None

    assert third.cramps == 1 and not third.has_data and not third.complete
    assert third.good_minutes == 0
    assert fourth.cramps == 0 and not fourth.has_data and not fourth.complete
    assert not fifth.has_data and fifth.sessions == 0
    json.dumps([n.to_dict() for n in nights], allow_nan=False)
    assert first.to_dict()["night"] == "2024-01-01"
    assert first.to_dict()["first_cramp"] == "2024-01-01T23:10:00+01:00"


def reference_figures(events: list[CrampRecord], kind: str) -> dict[date, tuple]:
    """Per night, the plain way: (episodes, union minutes, strongest, first start)."""
    by_night: dict[date, list[CrampRecord]] = {}
    for e in events:
        if e.kind == kind and (n := night_of(e.start, BERLIN)) is not None:
            by_night.setdefault(n, []).append(e)
    out = {}
    for n, group in by_night.items():
        group.sort(key=lambda e: e.start)
        merged: list[list[datetime]] = []
        for e in group:
            if merged and e.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e.end)
            else:
                merged.append([e.start, e.end])
        minutes = sum((b - a).total_seconds() for a, b in merged) / 60
        out[n] = (len(merged), minutes, max(e.peak_uv for e in group), group[0].start)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 6 * 24 * 60),  # start minute over six days
            st.integers(0, 59),
            st.floats(0.5, 900),
            st.sampled_from(["left", "right"]),
            st.sampled_from(["cramp", "movement"]),
            st.floats(10, 1000),
        ),
        max_size=80,
    )
)
def test_summaries_match_a_plain_per_night_merge(specs: list[tuple]) -> None:
    origin = berlin(2024, 3, 28, 0, 0)  # across the spring DST change
    events = [
        cramp(origin + timedelta(minutes=m, seconds=sec), d, channel=c, kind=k, peak=p)
        for m, sec, d, c, k, p in specs
    ]
    nights = summarize_nights(events, [], BERLIN)
    cramps, movements = reference_figures(events, "cramp"), reference_figures(events, "movement")
    for summary in nights:
        count, minutes, strongest, first = cramps.get(summary.night, (0, 0.0, None, None))
        assert summary.cramps == count
        assert summary.cramp_minutes == pytest.approx(minutes, abs=1e-6)
        assert summary.strongest_uv == strongest
        assert summary.first_cramp == first
        assert summary.movements == movements.get(summary.night, (0,))[0]
    assert {n.night for n in nights} >= cramps.keys() | movements.keys()


def test_nested_and_touching_events_merge_into_one_cramp() -> None:
    t = berlin(2024, 1, 1, 23, 0)
    events = [
        cramp(t, 600, channel="left"),  # 23:00-23:10
        cramp(t + timedelta(seconds=10), 10, channel="right"),  # inside the first
        cramp(t + timedelta(seconds=300), 30, channel="right"),  # inside, after the second ended
        cramp(t + timedelta(seconds=600), 60, channel="right"),  # touches the first's end
        cramp(t + timedelta(seconds=700), 20, channel="left"),  # separate
    ]
    (summary,) = summarize_nights(events, [], BERLIN)
    assert summary.cramps == 2
    assert summary.cramp_minutes == pytest.approx(11 + 20 / 60)


def test_sessions_add_up_per_channel_and_daytime_starts() -> None:
    sessions = [
        # A restart mid-night: two sessions, channels add up per session before the maximum.
        session(berlin(2024, 2, 1, 22, 0), 2, left=2, right=1),
        session(berlin(2024, 2, 2, 0, 30), 6, left=1, right=4),
        # Started at 17:30 and still running at 18:00: counts for the night of 2 February.
        session(berlin(2024, 2, 2, 17, 30), 9, left=9),
        # A short daytime test: no night.
        session(berlin(2024, 2, 3, 13, 0), 1, left=1),
    ]
    nights = summarize_nights([], sessions, BERLIN, min_good_minutes=240)
    assert [n.night for n in nights] == [date(2024, 2, 1), date(2024, 2, 2)]
    assert nights[0].good_minutes == pytest.approx(5 * 60)  # right: 1 + 4 h beats left: 2 + 1 h
    assert nights[0].sessions == 2 and nights[0].complete
    assert nights[1].good_minutes == pytest.approx(9 * 60)


def test_good_signal_is_capped_at_recorded_and_threshold_is_inclusive() -> None:
    sessions = [
        SessionRecord("pi", berlin(2024, 2, 1, 22, 0), 240 * 60, {"left": 999_999.0}),
        SessionRecord("pi", berlin(2024, 2, 2, 22, 0), 239 * 60, {"left": 239 * 60}),
    ]
    first, second = summarize_nights([], sessions, BERLIN)
    assert first.good_minutes == pytest.approx(240) and first.complete
    assert not second.complete


def test_summaries_range_and_empty_input() -> None:
    assert summarize_nights([], [], BERLIN) == []
    only = summarize_nights([], [], BERLIN, first=date(2024, 5, 1), last=date(2024, 5, 3))
    assert [n.has_data for n in only] == [False, False, False]
    assert all(n.cramps == 0 and not n.complete for n in only)
    with pytest.raises(ValueError, match="before"):
        summarize_nights([], [], BERLIN, first=date(2024, 5, 3), last=date(2024, 5, 1))


def test_records_validate() -> None:
    with pytest.raises(ValueError, match="kind"):
        cramp(berlin(2024, 1, 1, 23), 20, kind="walking")
    with pytest.raises(ValueError, match="aware"):
        IntakeRecord(datetime(2024, 1, 1, 8), "water", 250.0)
    with pytest.raises(ValueError, match="kind"):
        IntakeRecord(berlin(2024, 1, 1, 8), "water", 250.0, "pill")
    with pytest.raises(ValueError, match="amount"):
        IntakeRecord(berlin(2024, 1, 1, 8), "water", float("nan"))


# --- daily totals -----------------------------------------------------------------------------


def test_daily_totals_by_local_calendar_day() -> None:
    entries = [
        IntakeRecord(berlin(2024, 6, 1, 8, 0), "water", 250.0),
        IntakeRecord(berlin(2024, 6, 1, 23, 59), "water", 500.0),
        IntakeRecord(berlin(2024, 6, 1, 21, 0), "magnesium", 300.0),
        IntakeRecord(berlin(2024, 6, 2, 0, 1), "water", 100.0),  # 22:01 UTC on 1 June
        IntakeRecord(berlin(2024, 6, 2, 9, 0), "diuretic", 1.0, "event"),
    ]
    assert daily_totals(entries, BERLIN) == {
        date(2024, 6, 1): {"water": 750.0, "magnesium": 300.0},
        date(2024, 6, 2): {"water": 100.0, "diuretic": 1.0},
    }
    assert daily_totals([], BERLIN) == {}
    assert analysis.factor_kinds_of(entries) == {
        "water": "amount",
        "magnesium": "amount",
        "diuretic": "event",
    }


@settings(max_examples=30)
@given(
    offsets=st.lists(st.floats(0, 2 * 365 * 86400), min_size=1, max_size=300),
    zone=st.sampled_from(ZONES),
)
def test_daily_totals_match_a_plain_loop(offsets: list[float], zone: ZoneInfo) -> None:
    start = datetime(2023, 1, 1, tzinfo=UTC)
    factors = ("water", "magnesium", "caffeine")
    entries = [
        IntakeRecord(start + timedelta(seconds=s), factors[i % 3], float(i % 7))
        for i, s in enumerate(offsets)
    ]
    expected: dict[date, dict[str, float]] = {}
    for e in entries:
        day = expected.setdefault(e.time.astimezone(zone).date(), {})
        day[e.factor] = day.get(e.factor, 0.0) + e.amount
    assert daily_totals(entries, zone) == expected


# --- statistics -------------------------------------------------------------------------------


def reference_data(n: int = 40) -> tuple[list[NightSummary], dict[date, dict[str, float]]]:
    rng = np.random.default_rng(7)
    cramps = rng.poisson(1.0, n)
    magnesium = np.round(rng.uniform(0, 600, n) - 80 * cramps)
    nights = [night(d, int(c)) for d, c in zip(days(n), cramps, strict=True)]
    totals = {
        d: {"magnesium": float(max(m, 0)), "water": float(1000 + 100 * (i % 5))}
        for i, (d, m) in enumerate(zip(days(n), magnesium, strict=True))
    }
    for i in range(0, n, 4):  # diuretic every fourth day, never logged otherwise
        totals[days(n)[i]]["diuretic"] = 1.0
    return nights, totals


def test_statistics_equal_scipy_on_reference_data() -> None:
    nights, totals = reference_data()
    kinds = {"magnesium": "amount", "water": "amount", "diuretic": "event"}
    ins = insights(nights, totals, kinds, units={"magnesium": "mg"})
    cramps = {n.night: n.cramps for n in nights}
    for factor in kinds:
        for lag in (0, 1):
            pairs = [(d, d + timedelta(days=lag)) for d in sorted(totals)]
            pairs = [(d, n) for d, n in pairs if n in cramps]
            x = np.array([totals[d].get(factor, 0.0) for d, _ in pairs])
            y = np.array([cramps[n] for _, n in pairs], dtype=float)
            expected = stats.spearmanr(x, y)
            got = result(ins, factor, lag)
            assert got.status == "ok" and got.nights == len(pairs)
            assert got.rho == pytest.approx(float(expected.statistic), abs=1e-12)
            assert got.p_value == pytest.approx(float(expected.pvalue), rel=1e-9)
            high = x > 0 if kinds[factor] == "event" else x > np.median(x)
            assert got.high_nights == high.sum() and got.low_nights == (~high).sum()
            assert got.high_mean == pytest.approx(y[high].mean())
            assert got.low_mean == pytest.approx(y[~high].mean())
            assert got.difference == pytest.approx(y[high].mean() - y[~high].mean())
    p = [r.p_value for r in ins.results]
    assert [r.q_value for r in ins.results] == pytest.approx(list(bh_adjust(p)))


def test_spearman_columns_equal_one_call_per_column() -> None:
    rng = np.random.default_rng(3)
    y = rng.poisson(1.0, 50).astype(float)
    x = rng.integers(0, 5, (50, 4)).astype(float)
    rho, p = spearman_columns(y, x)
    for j in range(4):
        expected = stats.spearmanr(x[:, j], y)
        assert rho[j] == pytest.approx(float(expected.statistic), abs=1e-12)
        assert p[j] == pytest.approx(float(expected.pvalue), rel=1e-9)
    one_rho, one_p = spearman_columns(y, x[:, :1])
    assert one_rho[0] == pytest.approx(rho[0]) and one_p[0] == pytest.approx(p[0])
    assert spearman_columns(y, x[:, :0])[0].size == 0


def test_bh_matches_hand_computed_case() -> None:
    # Sorted p: 0.01, 0.03, 0.04, 0.20 -> p*m/rank: 0.04, 0.06, 0.0533, 0.20 -> running min from top.
    p = [0.01, 0.04, 0.03, 0.20]
    expected = [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.20]
    assert list(bh_adjust(p)) == pytest.approx(expected)
    assert list(analysis._bh(np.array(p))) == pytest.approx(expected)
    assert bh_adjust([]).size == 0
    with pytest.raises(ValueError):
        bh_adjust([0.5, 1.5])


def test_bh_falls_back_without_scipy_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(analysis.stats, "false_discovery_control")
    q = bh_adjust([0.01, 0.04, 0.03, 0.20])
    assert list(q) == pytest.approx([0.04, 0.053333333, 0.053333333, 0.20])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_own_bh_equals_scipy(p: list[float]) -> None:
    expected = stats.false_discovery_control(p, method="bh")
    assert analysis._bh(np.array(p)) == pytest.approx(expected, abs=1e-12)


def test_too_few_nights_says_so_without_numbers() -> None:
    nights = [night(d, i % 3) for i, d in enumerate(days(9))]
    totals = {d: {"magnesium": float(100 * i)} for i, d in enumerate(days(9))}
    ins = insights(nights, totals, {"magnesium": "amount"})
    lag0, lag1 = result(ins, "magnesium", 0), result(ins, "magnesium", 1)
    assert lag0.status == "too_few" and lag0.nights == 9
    assert lag0.message == "not enough nights yet (9 of 10 needed)"
    assert lag1.message == "not enough nights yet (8 of 10 needed)"
    numbers = ("rho", "p_value", "q_value", "threshold", "high_mean", "low_mean", "difference")
    for r in (lag0, lag1):
        assert all(getattr(r, name) is None for name in numbers)
        assert not any(ch.isdigit() for ch in r.message.split("(")[0])
    json.dumps(ins.to_dict(), allow_nan=False)


def test_no_variation_carries_no_numbers() -> None:
    nights = [night(d, 1) for d in days(12)]  # a cramp every night
    totals = {d: {"magnesium": float(i)} for i, d in enumerate(days(12))}
    r = result(insights(nights, totals, {"magnesium": "amount"}), "magnesium", 0)
    assert r.status == "no_variation" and "no variation" in r.message and r.rho is None

    nights = [night(d, i % 2) for i, d in enumerate(days(12))]
    totals = {d: {"dialysis": 1.0} for d in days(12)}
    r = result(insights(nights, totals, {"dialysis": "event"}), "dialysis", 0)
    assert r.status == "no_variation" and r.p_value is None and r.q_value is None


def test_lags_pair_a_day_with_the_right_night() -> None:
    # Intake on day d equals the cramps of night d + 1: lag 1 is a perfect rank correlation.
    cramps = [0, 2, 1, 3, 0, 1, 4, 2, 0, 1, 3, 2, 1, 0]
    nights = [night(d, c) for d, c in zip(days(14), cramps, strict=True)]
    totals = {d: {"water": float(cramps[i + 1])} for i, d in enumerate(days(13))}
    ins = insights(nights, totals, {"water": "amount"})
    lag0, lag1 = result(ins, "water", 0), result(ins, "water", 1)
    assert lag1.rho == pytest.approx(1.0) and lag1.nights == 13
    assert lag0.rho is not None and lag0.rho < 0.9 and lag0.nights == 13
    assert lag1.message.startswith("The day after a day with more water")
    assert lag0.message.startswith("On days with more water")


def test_which_days_and_nights_count() -> None:
    cramps = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 1]
    nights = [night(d, c) for d, c in zip(days(14), cramps, strict=True)]
    nights[3] = night(days(14)[3], 5, complete=False)  # too little good signal
    nights[4] = night(days(14)[4], 0, has_data=False)  # sensor off
    totals = {d: {"water": 500.0} for d in days(14)}
    for i in (0, 2, 5, 7, 9):
        totals[days(14)[i]]["magnesium"] = 300.0  # other logged days count as 0 mg
    del totals[days(14)[13]]  # nothing logged at all: unknown, left out
    kinds = {"magnesium": "amount"}

    default = result(insights(nights, totals, kinds), "magnesium", 0)
    assert default.nights == 11  # 13 logged days minus one incomplete and one without data
    assert default.high_nights == 5 and default.low_nights == 6

    loose = insights(nights, totals, kinds, include_incomplete=True)
    assert result(loose, "magnesium", 0).nights == 12  # never the night with no data
    assert loose.nights_used == 13 and loose.nights_without_data == 1
    assert result(loose, "water", 0).status == "no_variation"  # logged factors are included


def test_median_split_and_ties() -> None:
    nights = [night(d, c) for d, c in zip(days(10), [0, 1, 0, 1, 2, 0, 1, 2, 1, 3], strict=True)]
    # Median 200: days at the median go to the lower side.
    amounts = [100, 200, 200, 200, 300, 100, 200, 400, 200, 300]
    totals = {d: {"magnesium": float(a)} for d, a in zip(days(10), amounts, strict=True)}
    r = result(
        insights(nights, totals, {"magnesium": "amount"}, units={"magnesium": "mg"}), "magnesium", 0
    )
    assert r.threshold == 200 and r.split == "above 200 mg"
    assert (r.high_nights, r.low_nights) == (3, 7)
    # More than half at the top value: nothing is above the median, so its days go higher.
    top = [0, 0, 0, 50, 50, 50, 50, 50, 50, 50]
    totals = {d: {"alcohol": float(a)} for d, a in zip(days(10), top, strict=True)}
    r = result(
        insights(nights, totals, {"alcohol": "amount"}, units={"alcohol": "g"}), "alcohol", 0
    )
    assert r.split == "50 g or more" and (r.high_nights, r.low_nights) == (7, 3)


def test_sentence_is_plain_and_honest() -> None:
    nights, totals = reference_data(60)
    ins = insights(
        nights, totals, {"magnesium": "amount", "diuretic": "event"}, units={"magnesium": "mg"}
    )
    mg = result(ins, "magnesium", 0)
    assert mg.message.startswith("On days with more magnesium (above ")
    assert " mg), you had " in mg.message and "cramps that night (" in mg.message
    assert f"{mg.high_nights} vs {mg.low_nights} nights" in mg.message
    assert f"rank correlation {mg.rho:.2f}" in mg.message
    assert "fewer" in mg.message  # magnesium was built to go with fewer cramps
    dd = result(ins, "diuretic", 0)
    assert dd.message.startswith("On days with diuretic, you had")
    assert f"{dd.high_nights} nights with vs {dd.low_nights} without" in dd.message
    weak = analysis.FactorInsight(
        factor="magnesium", kind="amount", lag=0, nights=35, needed=10, status="ok", message="",
        unit="mg", rho=-0.21, p_value=0.2, q_value=0.40, threshold=300.0, split="above 300 mg",
        high_mean=0.6, low_mean=1.0, high_nights=18, low_nights=17, difference=-0.4,
    )  # fmt: skip
    assert analysis.sentence(weak) == (
        "On days with more magnesium (above 300 mg), you had 0.4 fewer cramps that night "
        "(0.6 vs 1.0 per night; 18 vs 17 nights). "
        "Weak link (rank correlation -0.21, q = 0.40): could be chance."
    )
    strong = analysis.sentence(
        replace(weak, rho=0.62, q_value=0.0004, high_mean=1.4, difference=0.4, lag=1)
    )
    assert strong.startswith(
        "The day after a day with more magnesium (above 300 mg), you had 0.4 more"
    )
    assert (
        "Strong link (rank correlation 0.62, q < 0.001): very unlikely to be chance alone" in strong
    )
    assert "does not make it the cause" in strong


def test_sentence_difference_matches_the_rounded_means() -> None:
    close = analysis.FactorInsight(
        factor="alcohol", kind="amount", lag=0, nights=40, needed=10, status="ok", message="",
        unit="g", rho=-0.1, p_value=0.5, q_value=0.7, threshold=0.0, split="above 0 g",
        high_mean=0.786, low_mean=0.846, high_nights=14, low_nights=26, difference=-0.06,
    )  # fmt: skip
    assert "you had about as many cramps that night (0.8 vs 0.8 per night" in analysis.sentence(
        close
    )
    taken = replace(close, kind="event", factor="dialysis", high_mean=1.25, low_mean=0.5)
    assert analysis.sentence(taken).startswith(
        "On days with dialysis, you had 0.7 more cramps that night (1.2 vs 0.5 per night; "
        "14 nights with vs 26 without)."
    )


def test_caveats_are_always_there() -> None:
    for ins in (
        insights([], {}, {}),
        insights(*reference_data(), {"magnesium": "amount"}),
    ):
        text = " ".join(ins.caveats).lower()
        assert "not cause" in text
        assert "placebo" in text and "quarter" in text and "four weeks" in text
        assert ins.to_dict()["caveats"] == list(ins.caveats)


# --- the doctor-visit notice ------------------------------------------------------------------


def cramp_nights(offsets: list[int], span: int = 30) -> list[NightSummary]:
    return [night(d, 1 if i in offsets else 0) for i, d in enumerate(days(span))]


def test_notice_fires_at_three_in_seven() -> None:
    notice = frequent_cramps_notice(cramp_nights([2, 5, 8]))  # nights 3 to 9 March
    assert notice is not None and "doctor" in notice
    assert "3 of the 7 nights from 3 Mar 2024 to 9 Mar 2024" in notice


def test_notice_not_at_two_in_seven_nor_three_in_eight() -> None:
    assert frequent_cramps_notice(cramp_nights([2, 5])) is None
    assert frequent_cramps_notice(cramp_nights([2, 6, 9])) is None  # 3 nights, but over 8
    assert frequent_cramps_notice(cramp_nights([0, 7, 14, 21, 28])) is None
    assert frequent_cramps_notice([]) is None


def test_notice_names_the_most_recent_week() -> None:
    nights = cramp_nights([1, 2, 3, 20, 22, 24, 25])
    notice = frequent_cramps_notice(nights)
    assert notice is not None
    assert "4 of the 7 nights from 20 Mar 2024 to 26 Mar 2024" in notice
    # Nights missing from the list (no data) are simply not cramp nights.
    gappy = [n for n in nights if n.cramps]
    assert frequent_cramps_notice(gappy) == notice
    assert insights(nights, {}, {}).notice == notice


def test_insights_serialise_to_json() -> None:
    nights, totals = reference_data()
    ins = insights(nights, totals, {"magnesium": "amount", "diuretic": "event"}, lags=(0, 1, 2))
    data = json.loads(json.dumps(ins.to_dict(), allow_nan=False))
    assert len(data["results"]) == 3 * 3  # magnesium, diuretic, then water (logged, as amount)
    assert {r["lag"] for r in data["results"]} == {0, 1, 2}
    assert data["results"][0]["factor"] == "magnesium"
    assert analysis._json(float("nan")) is None
    assert analysis._json({"x": (date(2024, 1, 2), float("inf"))}) == {"x": ["2024-01-02", None]}
