"""Device payloads: the retained state's good-signal totals and the envelope summaries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from firmware_host.device.messages import ChannelStates, EnvelopeSummary, night_of
from messaging.topics import Topics

START = datetime(2026, 11, 21, 22, 0, tzinfo=UTC)


def test_good_signal_is_the_session_minus_its_signal_lost_stretches() -> None:
    states = ChannelStates("bedroom", ("left", "right"), START)
    states.change("left", "signal_lost", 100.0)
    states.change("left", "idle", 160.0)
    states.change("left", "cramp", 200.0)
    states.change("right", "signal_lost", 250.0)
    payload = json.loads(states.payload(300.0))
    assert payload["recorded_s"] == 300.0 and payload["cramps_tonight"] == 1
    assert payload["channels"]["left"]["good_s"] == 240.0
    assert payload["channels"]["right"]["good_s"] == 250.0  # still lost: counted up to now
    assert payload["channels"]["left"]["since"] == "2026-11-21T22:03:20.000Z"


def test_envelope_summaries_cover_every_hop_once_whatever_the_blocks() -> None:
    hops = np.abs(np.random.default_rng(1).normal(5, 1, size=(500, 2)))
    hops[7, 0] = np.nan
    whole = EnvelopeSummary("d", ("a", "b"), 0.02, START).add(0, hops)
    summary = EnvelopeSummary("d", ("a", "b"), 0.02, START)
    pieces: list[bytes] = []
    for start in range(0, 500, 37):
        pieces += summary.add(start, hops[start : start + 37])
    assert pieces == whole and len(whole) == 10
    first = json.loads(whole[0])
    assert first["channels"]["a"]["mean_uv"] == pytest.approx(np.nanmean(hops[:50, 0]), abs=0.01)
    assert first["at_s"] == 1.0


def test_device_ids_outside_letters_digits_dash_underscore_are_refused() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        Topics("bed room/+")


def test_tonights_count_starts_again_at_noon_local_time() -> None:
    plus_one = timezone(timedelta(hours=1))
    start = datetime(2026, 11, 21, 21, 0, tzinfo=UTC)  # 22:00 local
    states = ChannelStates("bedroom", ("a",), start, tz=plus_one)
    states.change("a", "cramp", 3600.0)  # 23:00 local
    states.change("a", "idle", 3700.0)
    states.change("a", "cramp", 9 * 3600.0)  # 07:00 local, the same night
    states.change("a", "idle", 9 * 3600.0 + 60)
    payload = json.loads(states.payload(10 * 3600.0))
    assert (payload["night"], payload["cramps_tonight"]) == ("2026-11-21", 2)
    assert json.loads(states.payload(15 * 3600.0 + 1))["cramps_tonight"] == 0  # 12:00 local
    states.change("a", "cramp", 16 * 3600.0)
    payload = json.loads(states.payload(16 * 3600.0 + 30))
    assert (payload["night"], payload["cramps_tonight"]) == ("2026-11-22", 1)
    assert (
        night_of(datetime(2026, 11, 22, 10, 59, tzinfo=UTC), plus_one).isoformat() == "2026-11-21"
    )


def test_the_state_carries_levels_problems_and_the_storage_block() -> None:
    storage = {"outbox": {"storage": "memory"}, "recording": {"state": "paused"}}
    states = ChannelStates("bedroom", ("left", "right"), START, storage=lambda: storage)
    states.add_envelope(np.array([[2.0, np.nan], [4.0, np.nan]]))
    states.quality("right", ("electrode_off",))
    payload = json.loads(states.payload(60.0))
    assert payload["channels"]["left"]["level_uv"] == 3.0
    assert payload["channels"]["right"]["level_uv"] is None  # no valid envelope: no number
    assert payload["channels"]["right"]["problems"] == ["electrode_off"]
    assert payload["storage"] == storage
    assert json.loads(states.payload(120.0))["channels"]["left"]["level_uv"] is None  # a new window
