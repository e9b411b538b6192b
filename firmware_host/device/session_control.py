"""Which session the device is recording: a night, or a named session (dialysis, or another
kind) started and ended from the command line (`crampwatch run --session dialysis`), over MQTT
(`crampwatch/<device>/command`, checked by `messaging.sessions.parse_command`), or by holding
the marker button down (a hold starts the configured kind; a hold during a session ends it).

Requests come from any thread (paho's network thread, gpiozero's); they are queued and applied
by the detection loop (`take`), in order, at a time in the recording: a command at the block
being processed, a hold at the press that began it (a hold is recognised seconds after the
press) when it starts a session and at the hold when it ends one, so that both presses lie
inside the session. A bad or stale command is refused with a warning (at most one a minute,
with the count) and never stops the device; more than `MAX_CHANGES_PER_MINUTE` changes a minute
are refused too, so that a flood of commands cannot flood the outbox with sessions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from messaging.sessions import (
    DIALYSIS,
    END_SESSION,
    NIGHT,
    START_SESSION,
    CommandError,
    SessionCommand,
    check_session_id,
    check_session_kind,
    new_session_id,
    parse_command,
)

log = logging.getLogger("crampwatch.session")
MAX_PENDING = 16
MAX_CHANGES_PER_MINUTE = 10
WARN_EVERY_S = 60.0
HOLD = "hold"
SOURCE_COMMAND_LINE, SOURCE_MQTT, SOURCE_BUTTON = "command line", "MQTT", "button"


@dataclass(frozen=True)
class SessionTag:
    """The session a message belongs to: its kind, and its id when it is a named session."""

    kind: str = NIGHT
    session_id: str | None = None

    @property
    def named(self) -> bool:
        return self.kind != NIGHT

    def fields(self) -> dict[str, str]:
        """The fields every device message carries (`session_id` only in a named session)."""
        out = {"session_kind": self.kind}
        if self.session_id is not None:
            out["session_id"] = self.session_id
        return out

    def describe(self) -> str:
        return f"{self.kind} session {self.session_id}" if self.named else "the night"


NIGHT_TAG = SessionTag()


@dataclass(frozen=True)
class SessionChange:
    """From `before` to `after` at `at_s` seconds from the recording's start."""

    before: SessionTag
    after: SessionTag
    at_s: float
    source: str


@dataclass(frozen=True)
class _Request:
    command: str  # START_SESSION, END_SESSION or HOLD
    source: str
    kind: str | None = None
    session_id: str | None = None
    at_s: float | None = None  # None: the block being processed
    end_at_s: float | None = None  # a hold that ends a session: when


class SessionControl:
    """The current session and the queue of requests to change it (thread-safe)."""

    def __init__(
        self, kind: str = NIGHT, *, hold_kind: str = DIALYSIS, started: datetime | None = None,
        session_id: str | None = None, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        check_session_kind(kind)
        self.hold_kind = check_session_kind(hold_kind, named=True)
        if session_id is not None:
            check_session_id(session_id)
        initial = (
            SessionTag(kind, session_id or new_session_id(kind, started))
            if kind != NIGHT else NIGHT_TAG
        )  # fmt: skip
        self._current = initial
        self.initial = initial
        self._lock = threading.Lock()
        self._pending: deque[_Request] = deque()
        self._last_at_s = 0.0
        self._monotonic = monotonic
        self._recent_changes: deque[float] = deque()
        self.refused = 0
        self._refused_unlogged = 0
        self._warned_at: float | None = None

    @property
    def current(self) -> SessionTag:
        with self._lock:
            return self._current

    # -- requests (any thread) -------------------------------------------------------------

    def request(self, command: SessionCommand, source: str) -> None:
        """Start or end a session at the block being processed."""
        self._queue(_Request(command.command, source, command.kind, command.session_id))

    def hold(self, press_at_s: float, held_at_s: float) -> None:
        """The marker button was held down: start `hold_kind` at the press, or end the current
        named session at the hold."""
        self._queue(_Request(HOLD, SOURCE_BUTTON, at_s=press_at_s, end_at_s=held_at_s))

    def on_command(self, payload: bytes, retained: bool = False) -> bool:
        """An MQTT command; False (and a warning) when it is refused. Never raises."""
        try:
            if retained:
                raise CommandError(
                    "it was a retained message: commands must not be retained (a retained "
                    "command would start or end a session again at every reconnect)"
                )
            command = parse_command(payload)
        except CommandError as error:
            self._refuse(f"refused a command on MQTT: {error}")
            return False
        except Exception as error:  # anything no check foresaw: refused, never fatal
            self._refuse(f"refused a command on MQTT ({type(error).__name__}: {str(error)[:120]})")
            return False
        self.request(command, SOURCE_MQTT)
        return True

    def _queue(self, request: _Request) -> None:
        with self._lock:
            now = self._monotonic()
            while self._recent_changes and now - self._recent_changes[0] > 60.0:
                self._recent_changes.popleft()
            busy = len(self._recent_changes) >= MAX_CHANGES_PER_MINUTE
            flood = busy or len(self._pending) >= MAX_PENDING
            if not flood:
                self._recent_changes.append(now)
                self._pending.append(request)
        if flood:
            self._refuse(
                f"refused a session request ({request.source}): more than "
                f"{MAX_CHANGES_PER_MINUTE} in a minute"
            )

    def _refuse(self, message: str) -> None:
        """Count a refusal; log it, but at most one warning every WARN_EVERY_S."""
        with self._lock:
            self.refused += 1
            now = self._monotonic()
            if self._warned_at is not None and now - self._warned_at < WARN_EVERY_S:
                self._refused_unlogged += 1
                return
            unlogged, self._refused_unlogged = self._refused_unlogged, 0
            self._warned_at = now
        more = f" ({unlogged} more refused since the last warning)" if unlogged else ""
        log.warning("%s%s", message, more)

    # -- applying them (the detection loop) ------------------------------------------------

    def take(self, elapsed_s: float) -> list[SessionChange]:
        """Apply the queued requests in order; the changes they made (none for a duplicate,
        or an end when no named session runs), each at a time <= `elapsed_s`."""
        with self._lock:
            requests = list(self._pending)
            self._pending.clear()
        changes = []
        for request in requests:
            resolved = self._resolve(request, elapsed_s)
            if resolved is None:
                continue
            after, at_s = resolved
            at_s = min(elapsed_s, max(at_s, self._last_at_s))
            with self._lock:
                before, self._current = self._current, after
            self._last_at_s = at_s
            changes.append(SessionChange(before, after, at_s, request.source))
            log.info(
                "%s at %.0f s (%s)",
                f"{after.kind} session {after.session_id} started"
                if after.named else f"{before.kind} session {before.session_id} ended",
                at_s, request.source,
            )  # fmt: skip
        return changes

    def _resolve(self, request: _Request, elapsed_s: float) -> tuple[SessionTag, float] | None:
        current = self.current
        if request.command == HOLD:
            if current.named:
                return NIGHT_TAG, _or(request.end_at_s, elapsed_s)
            return SessionTag(self.hold_kind, new_session_id(self.hold_kind)), _or(
                request.at_s, elapsed_s
            )
        if request.command == START_SESSION:
            assert request.kind is not None
            if request.session_id is not None and request.session_id == current.session_id:
                return None  # delivered twice (MQTT QoS 1 is at least once)
            session_id = request.session_id or new_session_id(request.kind)
            if current.named:
                log.info("%s ends: another session starts", current.describe())
            return SessionTag(request.kind, session_id), _or(request.at_s, elapsed_s)
        assert request.command == END_SESSION
        if not current.named:
            log.info("an end of session (%s) while recording the night: nothing to end",
                     request.source)  # fmt: skip
            return None
        if request.session_id is not None and request.session_id != current.session_id:
            self._refuse(
                f"refused an end of session {request.session_id} ({request.source}): the "
                f"current session is {current.session_id}"
            )
            return None
        return NIGHT_TAG, _or(request.at_s, elapsed_s)

    def status(self) -> dict[str, Any]:
        current = self.current
        return {**current.fields(), "refused_commands": self.refused}


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
