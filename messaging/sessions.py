"""Recording sessions in the MQTT contract: a recording is a night unless it is started as a
named daytime session (dialysis, or another kind the wearer names); the commands that start and
end one on a device (`crampwatch/<device>/command`, `crampwatch.command/1`).

Every device message says which session it belongs to (`session_kind`, and `session_id` for a
named session): additive fields, so older readers ignore them and older devices, which lack
them, are recording nights. A named session's cramps belong to it, never to a night.

Commands arrive from outside (the dashboard, home automation, anyone on the broker), so they are
checked strictly here, once, for the device: a small flat JSON object with known fields only.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NIGHT = "night"
DIALYSIS = "dialysis"
SESSION_KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

COMMAND_SCHEMA = "crampwatch.command/1"
START_SESSION, END_SESSION = "start_session", "end_session"
COMMANDS = (START_SESSION, END_SESSION)
COMMAND_FIELDS = ("schema", "command", "session_kind", "session_id")
MAX_COMMAND_BYTES = 1024


class CommandError(ValueError):
    """A command that does not validate; the text says what was wrong and what is allowed."""


def check_session_kind(kind: Any, *, named: bool = False) -> str:
    """A session kind ('night', 'dialysis', or another lower-case name), else a ValueError that
    says what is allowed. `named`: a kind a session can be started as (not 'night')."""
    if not isinstance(kind, str) or not SESSION_KIND_PATTERN.match(kind):
        shown = repr(kind)[:40]
        raise ValueError(
            f"session kind {shown} is not allowed: use 'dialysis' or another name of 1-32 "
            "lower-case letters, digits and '_' starting with a letter"
        )
    if named and kind == NIGHT:
        raise ValueError(
            "a night is not started as a session: it is what the device records outside named "
            "sessions (end the named session instead)"
        )
    return kind


def check_session_id(value: Any) -> str:
    """A session id (1-64 letters, digits and . _ : -), else a ValueError."""
    if not isinstance(value, str) or not SESSION_ID_PATTERN.match(value):
        raise ValueError(
            f"session id {repr(value)[:80]} is not allowed: use 1-64 letters, digits, '.', '_', "
            "':' and '-'"
        )
    return value


def new_session_id(kind: str, started: datetime | None = None) -> str:
    """A fresh id for a named session: its kind, its start (UTC) and a random tail."""
    moment = (started or datetime.now(UTC)).astimezone(UTC)
    return f"{check_session_kind(kind)}-{moment:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SessionCommand:
    """A validated command: start a named session of `kind` (with `session_id`, or one the
    device makes), or end the current named session (only `session_id`'s, when given)."""

    command: str
    kind: str | None = None
    session_id: str | None = None

    def payload(self) -> bytes:
        """The command as the device reads it."""
        document: dict[str, Any] = {"schema": COMMAND_SCHEMA, "command": self.command}
        if self.kind is not None:
            document["session_kind"] = self.kind
        if self.session_id is not None:
            document["session_id"] = self.session_id
        return json.dumps(document, separators=(",", ":")).encode()


def start_command(kind: str, session_id: str | None = None) -> SessionCommand:
    check_session_kind(kind, named=True)
    if session_id is not None:
        check_session_id(session_id)
    return SessionCommand(START_SESSION, kind, session_id)


def end_command(session_id: str | None = None) -> SessionCommand:
    if session_id is not None:
        check_session_id(session_id)
    return SessionCommand(END_SESSION, None, session_id)


def parse_command(payload: bytes) -> SessionCommand:
    """A command from its MQTT payload, or a CommandError that says why not."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(
            f"a command of {len(payload)} bytes is over the {MAX_COMMAND_BYTES} limit"
        )
    document = _json_object(payload)
    unknown = sorted(str(k)[:40] for k in document if k not in COMMAND_FIELDS)
    if unknown:
        raise CommandError(
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(COMMAND_FIELDS)}"
        )
    if document.get("schema") != COMMAND_SCHEMA:
        raise CommandError(
            f"schema is {repr(document.get('schema'))[:60]}, expected {COMMAND_SCHEMA!r}"
        )
    command = document.get("command")
    if command not in COMMANDS:
        raise CommandError(f"command {repr(command)[:40]} is not one of {', '.join(COMMANDS)}")
    kind, session_id = document.get("session_kind"), document.get("session_id")
    try:
        if command == START_SESSION:
            if kind is None:
                raise CommandError("start_session needs a session_kind, e.g. 'dialysis'")
            return start_command(kind, session_id)
        if kind is not None:
            raise CommandError("end_session takes no session_kind (it ends the current session)")
        return end_command(session_id)
    except CommandError:
        raise
    except ValueError as error:
        raise CommandError(str(error)) from None


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise CommandError("not UTF-8 text") from None
    except RecursionError:
        raise CommandError("nested too deeply: a command is a flat JSON object") from None
    except ValueError as error:  # JSONDecodeError, and the constants refused below
        raise CommandError(f"not JSON: {str(error)[:120]}") from None
    if not isinstance(document, dict):
        raise CommandError("not a JSON object")
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


__all__ = [
    "COMMANDS",
    "COMMAND_SCHEMA",
    "DIALYSIS",
    "END_SESSION",
    "NIGHT",
    "START_SESSION",
    "CommandError",
    "SessionCommand",
    "check_session_id",
    "check_session_kind",
    "end_command",
    "new_session_id",
    "parse_command",
    "start_command",
]
