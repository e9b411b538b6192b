"""The durable outbox: order, acknowledgement, coalescing, bounded retention, restart."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

import pytest

from firmware_host.device.outbox import Outbox, OutboxCounts
from tests.small_disk import small_disk


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


# --- the disk under it fails -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_disk_holds_messages_in_memory_and_writes_them_back_when_space_returns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    with small_disk(tmp_path / "disk", 2 << 20) as disk, caplog.at_level(logging.INFO):
        outbox = Outbox(disk.path / "outbox.db", retry_s=30.0, clock=clock)
        before = [outbox.put("t/event", f"e{i}".encode(), kind="event") for i in range(5)]
        outbox.mark_sent(before[0])
        disk.fill()
        payload = b"x" * 2000
        held = [outbox.put("t/event", payload + f"{i}".encode(), kind="event") for i in range(300)]
        assert outbox.storage == "memory" and "full" in (outbox.problem or "")
        status = outbox.status()
        assert status["in_memory"] == 300 and status["dropped"] == 0
        # Still published from memory, in order after what is on disk.
        order = [m.id for m in outbox.unsent(limit=1000)]
        assert order == [*before[1:], *held]
        outbox.mark_sent(held[0])
        outbox.mark_sent(before[1])  # acknowledged while the disk is full
        clock.now = 10.0
        assert not outbox.maintain()  # not yet time to try again
        disk.free()
        clock.now = 31.0
        assert outbox.maintain() and outbox.storage == "disk"
        assert [m.id for m in outbox.unsent(limit=1000)] == [*before[2:], *held[1:]]
        assert outbox.status()["in_memory"] == 0 and outbox.written_back == 299
        outbox.close()
        with Outbox(disk.path / "outbox.db") as reopened:  # it is all on disk now
            assert reopened.counts() == OutboxCounts(3 + 299, 2, 0)
    assert "holding messages in memory" in caplog.text
    assert "the disk works again" in caplog.text


def test_held_messages_are_bounded_dropping_quality_first_and_each_drop_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unusable = tmp_path / "a-folder"
    unusable.mkdir()  # not a file: SQLite cannot open it
    with Outbox(unusable, memory_bytes=10_010) as outbox, caplog.at_level(logging.ERROR):
        assert outbox.storage == "memory"
        for i in range(4):
            outbox.put("t/quality", b"q" * 1000 + bytes([i]), kind="quality")
        for i in range(8):
            outbox.put("t/event", b"e" * 1000 + bytes([i]), kind="event")  # room for 10
        kinds = [m.kind for m in outbox.unsent(limit=100)]
        assert kinds == ["quality", "quality", *["event"] * 8]
        for i in range(4):
            outbox.put("t/event", b"f" * 1000 + bytes([i]), kind="event")
        kept = outbox.unsent(limit=100)
        assert [m.kind for m in kept] == ["event"] * 10  # quality first, then the oldest events
        assert kept[0].payload[:1] == b"e" and kept[0].payload[-1] == 2
        assert outbox.status()["dropped"] == 6 and outbox.counts().dropped == 6
    assert caplog.text.count("dropping unsent") == 6
    assert "dropping unsent quality message" in caplog.text


def test_a_damaged_file_is_moved_aside_and_a_new_outbox_started(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR), Outbox(path) as outbox:
        assert outbox.storage == "disk"
        outbox.put("t/event", b"e", kind="event")
        assert outbox.counts().unsent == 1
    (aside,) = tmp_path.glob("outbox.db.damaged-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    assert "was damaged; moved it to" in caplog.text


def test_a_newer_outbox_is_left_alone_and_messages_are_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with Outbox(path) as outbox:
        outbox.put("t/event", b"old", kind="event")
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with Outbox(path, retry_s=0.0) as outbox:
        assert outbox.storage == "memory" and "newer crampwatch" in (outbox.problem or "")
        outbox.put("t/event", b"new", kind="event")
        assert not outbox.maintain()
        assert [m.payload for m in outbox.unsent()] == [b"new"]
    assert not list(tmp_path.glob("*.damaged-*"))


def test_a_read_only_outbox_holds_messages_in_memory(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 1 << 20) as disk:
        path = disk.path / "outbox.db"
        with Outbox(path) as outbox:
            outbox.put("t/event", b"waiting", kind="event")
        disk.read_only()
        with Outbox(path, retry_s=0.0) as outbox:
            assert outbox.storage == "memory" and "read" in (outbox.problem or "").lower()
            new = outbox.put("t/event", b"new", kind="event")
            assert [m.payload for m in outbox.unsent()] == [b"new"]
            outbox.mark_sent(new)
            assert outbox.counts().unsent == 0
