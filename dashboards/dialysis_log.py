"""Logging named sessions (dialysis, ...) and lab results: every way in (the pages' forms, the JSON
API, MQTT, the command line) lands here and is checked the same way (`dashboards.dialysis`).

A session started or ended on the dashboard is stored at once and the devices are told over MQTT
(`crampwatch/<device>/command`, `messaging.sessions`), so that they record it as the session it
is; a device that is not connected is not told, and the session's time still keeps its cramps
out of the nights. A session logged afterwards (with its start) gets an id from its kind and
start, so that the same session logged twice, or delivered twice over MQTT, is stored once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from dashboards.dialysis import (
    DetailsError,
    LabResult,
    SessionDetails,
    details_update,
    lab_from_payload,
    merged_details,
)
from dashboards.live_feed import LiveFeed
from dashboards.store import Store
from dashboards.timebase import iso
from messaging.sessions import (
    DIALYSIS,
    SessionCommand,
    check_session_kind,
    end_command,
    new_session_id,
    start_command,
)
from messaging.topics import Topics

log = logging.getLogger("crampwatch.dashboard.sessions")
SOURCES = ("form", "api", "mqtt", "cli", "device")


def logged_session_id(kind: str, start: datetime) -> str:
    """The id of a session logged afterwards: its kind and start (UTC)."""
    return f"{kind}-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@dataclass
class DialysisLog:
    """Starts, ends and details of named sessions, and lab results, into the store."""

    store: Store
    tz: tzinfo
    feed: LiveFeed | None = None
    send: Callable[[str, bytes], bool] | None = None  # MQTT publish (QoS 1), when connected
    prefix: str = "crampwatch"

    # -- sessions --------------------------------------------------------------------------

    def start(self, kind: str = DIALYSIS, source: str = "form",
              now: datetime | None = None) -> tuple[str, list[str]]:  # fmt: skip
        """Start a named session now; returns its id and the devices that were told."""
        try:
            check_session_kind(kind, named=True)
        except ValueError as error:
            raise DetailsError(str(error)) from None
        now = now or datetime.now(UTC)
        session_id = new_session_id(kind, now)
        self.store.put_named_session(session_id, kind, source=source, started=iso(now))
        told = self._tell(start_command(kind, session_id))
        self._changed()
        log.info("%s session %s started (%s)", kind, session_id, source)
        return session_id, told

    def end(self, session_id: str, source: str = "form",
            now: datetime | None = None) -> list[str]:  # fmt: skip
        """End a named session now (a session already ended keeps its end); the devices told."""
        row = self._row(session_id)
        if row["ended"] is None:
            now = now or datetime.now(UTC)
            self.store.put_named_session(session_id, row["kind"], source=source, ended=iso(now))
            self._changed()
        return self._tell(end_command(session_id))

    def log(self, payload: dict[str, Any] | bytes | str,
            source: str) -> tuple[str, SessionDetails, bool]:  # fmt: skip
        """Log a session's details: a new session (with its start), or more about one already
        known (`session_id`; fields left out are kept, null clears one). Returns the id, the
        details as stored and whether the session is new. DetailsError if anything is wrong."""
        update = details_update(payload, tz=self.tz)
        existing = self._row(update.session_id, missing_ok=True) if update.session_id else None
        if existing is None:
            kind = update.kind or DIALYSIS
            start = update.fields.get("start")
            if start is None:
                raise DetailsError(
                    'a new session needs its start (e.g. "start": "2026-11-16T07:30"); to '
                    "add to a session already logged, give its session_id"
                )
            session_id = update.session_id or logged_session_id(kind, start)
            existing = self._row(session_id, missing_ok=True)
        else:
            session_id, kind = existing["session_id"], existing["kind"]
        if existing is not None:
            kind = existing["kind"]
            if update.kind is not None and update.kind != kind:
                raise DetailsError(f"session {session_id} is a {kind} session, not {update.kind}")
            try:
                stored = SessionDetails.from_stored(existing["details"])
            except ValueError:
                log.warning("session %s: stored details unreadable; replaced", session_id)
                stored = SessionDetails()
        else:
            stored = SessionDetails()
        details = merged_details(stored, update.fields)
        new = self.store.put_named_session(
            session_id, kind, source=source, details=json.dumps(details.to_dict())
        )
        self._changed()
        return session_id, details, new

    def delete(self, session_id: str) -> bool:
        """Delete a session nothing recorded (a recorded one is kept: clear its details)."""
        self._row(session_id)
        if not self.store.delete_named_session(session_id):
            raise DetailsError(
                f"session {session_id} was recorded by a device, so it stays (its recording is "
                "not a night's); change or clear its details instead"
            )
        self._changed()
        return True

    # -- lab results -----------------------------------------------------------------------

    def add_lab(self, payload: dict[str, Any] | bytes | str, source: str) -> tuple[LabResult, bool]:
        lab = lab_from_payload(payload, tz=self.tz, source=source,
                               time_optional=source in ("form", "api", "cli"))  # fmt: skip
        new = self.store.put_lab(lab.to_dict())
        self._changed("lab")
        return lab, new

    def delete_lab(self, entry_id: str) -> bool:
        deleted = self.store.delete_lab(entry_id)
        if deleted:
            self._changed("lab")
        return deleted

    # -- MQTT ------------------------------------------------------------------------------

    def from_mqtt(self, payload: bytes, person: str) -> None:
        """`crampwatch/<person>/session`: a session's details; refused like any bad message."""
        from dashboards.ingest import Refused

        try:
            self.log(payload, "mqtt")
        except DetailsError as error:
            raise Refused(str(error)) from None

    def lab_from_mqtt(self, payload: bytes, person: str) -> None:
        """`crampwatch/<person>/lab`: a lab result (with the time the blood was taken)."""
        from dashboards.ingest import Refused

        try:
            self.add_lab(payload, "mqtt")
        except DetailsError as error:
            raise Refused(str(error)) from None

    # -- helpers ---------------------------------------------------------------------------

    def _row(self, session_id: str | None, *, missing_ok: bool = False) -> Any:
        rows = self.store.query("SELECT * FROM named_session WHERE session_id = ?", (session_id,))
        if not rows and not missing_ok:
            raise DetailsError(f"there is no session {str(session_id)[:80]!r}")
        return rows[0] if rows else None

    def _tell(self, command: SessionCommand) -> list[str]:
        """Send a command to every device this dashboard knows; the devices it went to."""
        if self.send is None:
            return []
        told = []
        for row in self.store.query("SELECT device FROM device ORDER BY device"):
            try:
                topic = Topics(row["device"], self.prefix).command
            except ValueError:
                continue
            if self.send(topic, command.payload()):
                told.append(row["device"])
        return told

    def _changed(self, kind: str = "session") -> None:
        if self.feed is not None:
            self.feed.publish(kind)
