"""The durable outbox: order, acknowledgement, coalescing, bounded retention, restart."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from firmware_host.device.outbox import Outbox


def test_messages_come_back_in_order_until_marked_sent(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        ids = [outbox.put("t/event", f"{i}".encode(), kind="event") for i in range(5)]
        assert [m.payload for m in outbox.unsent()] == [b"0", b"1", b"2", b"3", b"4"]
        outbox.mark_sent(ids[1])
        assert [m.id for m in outbox.unsent()] == [ids[0], *ids[2:]]
        assert [m.id for m in outbox.unsent(after_id=ids[2], limit=1)] == [ids[3]]
        assert outbox.counts().unsent == 4 and outbox.counts().sent == 1


def test_unsent_messages_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        first = outbox.put("t/event", b"a", kind="event")
        outbox.put("t/event", b"b", kind="event")
        outbox.mark_sent(first)
    with Outbox(path) as reopened:
        assert [m.payload for m in reopened.unsent()] == [b"b"]


def test_a_newer_state_replaces_the_unsent_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db") as outbox:
        outbox.put("t/state", b"old", kind="state", retain=True, coalesce_key="state")
        outbox.put("t/event", b"e", kind="event")
        outbox.put("t/state", b"new", kind="state", retain=True, coalesce_key="state")
        unsent = outbox.unsent()
        assert [m.payload for m in unsent] == [b"e", b"new"]
        assert unsent[1].retain


def test_a_full_outbox_drops_quality_before_events_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Outbox(tmp_path / "outbox.db", max_unsent=3) as outbox, caplog.at_level(logging.ERROR):
        outbox.put("t/event", b"e1", kind="event")
        outbox.put("t/quality", b"q1", kind="quality")
        outbox.put("t/event", b"e2", kind="event")
        outbox.put("t/event", b"e3", kind="event")  # one too many: q1 goes
        assert [m.payload for m in outbox.unsent()] == [b"e1", b"e2", b"e3"]
        outbox.put("t/event", b"e4", kind="event")  # now the oldest event goes
        assert [m.payload for m in outbox.unsent()] == [b"e2", b"e3", b"e4"]
        assert outbox.counts().dropped == 2
    assert "dropping unsent quality message" in caplog.text
    assert "dropping unsent event message" in caplog.text and "e1" in caplog.text


def test_sent_messages_are_pruned_after_the_retention(tmp_path: Path) -> None:
    with Outbox(tmp_path / "outbox.db", keep_sent_s=60.0) as outbox:
        sent = outbox.put("t/event", b"a", kind="event")
        outbox.put("t/event", b"b", kind="event")
        outbox.mark_sent(sent)
        assert outbox.prune() == 0
        assert outbox.prune(now=time.time() + 61) == 1
        assert outbox.counts().sent == 0 and outbox.counts().unsent == 1
