"""The device daemon's configuration: one TOML file, validated, with command-line overrides.

Every setting is declared once in `SETTINGS` (section, key, type, default, what it does). The
same table validates files (`crampwatch config check FILE`), writes the commented example
(`crampwatch config example`) and fills the `crampwatch run` options that the command line left
out: command line > file > default.
"""

from __future__ import annotations

import argparse
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from messaging.broker import parse_broker
from messaging.sessions import check_session_kind
from messaging.topics import check_device_id

STATE_DIR = "~/.local/state/crampwatch"
MAX_CONFIG_BYTES = 1 << 20


class DaemonConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Setting:
    section: str
    key: str
    dest: str
    kind: type | tuple[type, ...]
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], Any] | None = None
    example: Any = None  # shown (commented out) in the example file when there is no default

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def _positive(value: float) -> float:
    if not (math.isfinite(value) and value > 0):
        raise ValueError("must be a number above 0")
    return value


def _non_negative(value: float) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError("must be a number of 0 or more")
    return value


def _fraction(value: float) -> float:
    if not 0 <= value < 1:
        raise ValueError("must be at least 0 and below 1")
    return value


def _web_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an http:// or https:// address, e.g. http://pi.local:8000/")
    return value


def _port_text(value: str) -> str:
    parse_broker(value)
    return value


def _names(value: list) -> list:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of one or more names")
    for name in value:
        check_device_id(name)
    if len(set(value)) != len(value):
        raise ValueError("names must differ")
    return value


def _pair(value: list) -> list:
    if len(value) != 2 or not all(isinstance(v, int | float) for v in value):
        raise ValueError("must be two numbers [ON, OFF]")
    if not value[0] > value[1] > 0:
        raise ValueError("ON must be above OFF, both above 0")
    return [float(v) for v in value]


def _device(value: str) -> str:
    check_device_id(value)
    return value


def _session_kind(value: str) -> str:
    return check_session_kind(value)


def _named_session_kind(value: str) -> str:
    return check_session_kind(value, named=True)


SETTINGS: tuple[Setting, ...] = (
    Setting("device", "id", "device", str, "crampwatch", "device id in topics and events (letters, digits, - and _)", check=_device),
    Setting("device", "channels", "channel_names", list, ["left_calf", "right_calf"], "channel names, in the order of the converter inputs", check=_names),
    Setting("source", "kind", "source", str, "simulated", "where samples come from", choices=("simulated", "ads1115", "mcp3008", "file")),
    Setting("source", "chip", "sim", str, "mcp3008", "kind = simulated: which converter to simulate", choices=("mcp3008", "ads1115")),
    Setting("source", "signal", "signal", str, "synthetic", "kind = simulated: what the inputs see, 'synthetic' or a recording in uV/mV/V"),
    Setting("source", "file", "play", str, None, "kind = file: the recording to play (any format replay reads)", example="night.edf"),
    Setting("source", "speed", "speed", (int, float), 1.0, "simulated or file: times real time (0: as fast as possible)", check=_non_negative),
    Setting("source", "hours", "hours", (int, float), 8.0, "kind = simulated, synthetic signal: night length", check=_positive),
    Setting("source", "seed", "seed", int, 7, "kind = simulated, synthetic signal: which night"),
    Setting("source", "bus_error_rate", "bus_error_rate", (int, float), 0.0, "kind = simulated: share of bus accesses that fail", check=_fraction),
    Setting("source", "rate", "rate", (int, float), None, "frames/s for the MCP3008 (default 1000), data rate for the ADS1115 (860)", check=_positive, example=1000),
    Setting("source", "i2c_bus", "i2c_bus", int, 1, "kind = ads1115: I2C bus number (/dev/i2c-N)"),
    Setting("source", "i2c_address", "i2c_address", int, 0x48, "kind = ads1115: I2C address (0x48-0x4B)", choices=(0x48, 0x49, 0x4A, 0x4B)),
    Setting("source", "ready_pin", "ready_pin", int, 17, "kind = ads1115: BCM pin wired to ALERT/RDY"),
    Setting("source", "pga", "pga", (int, float), 2.048, "kind = ads1115: full-scale range in volts", choices=(6.144, 4.096, 2.048, 1.024, 0.512, 0.256)),
    Setting("source", "spi_bus", "spi_bus", int, 0, "kind = mcp3008: SPI bus"),
    Setting("source", "spi_device", "spi_device", int, 0, "kind = mcp3008: chip select"),
    Setting("source", "vref", "vref", (int, float), 3.3, "kind = mcp3008: reference voltage", check=_positive),
    Setting("source", "inputs", "inputs", list, None, "converter inputs per channel, e.g. ['AIN0-AIN1', 'AIN2-AIN3'] or ['CH0', 'CH1']", example=["CH0", "CH1"]),
    Setting("source", "front_end_gain", "front_end_gain", (int, float), 1000.0, "real converters: gain from the electrodes to the ADC", check=_positive),
    Setting("source", "front_end_offset_v", "front_end_offset_v", (int, float), 1.65, "real converters: bias of the front end's output in volts"),
    Setting("pipeline", "mode", "mode", str, "raw", "raw EMG (band-pass + RMS) or an envelope-output sensor", choices=("raw", "envelope")),
    Setting("pipeline", "notch_hz", "notch", int, 50, "mains frequency to notch out (0: none)", choices=(0, 50, 60)),
    Setting("pipeline", "floor_uv", "floor_uv", (int, float), None, "known resting floor in uV, used from the first sample and held (else learned from quiet)", check=_positive, example=4.0),
    Setting("pipeline", "learn_floor", "learn_floor", bool, False, "with floor_uv: only start with it, then learn the floor from quiet"),
    Setting("pipeline", "calibration", "calibration", str, None, "a file from `crampwatch calibrate`", example="/var/lib/crampwatch/calibration.json"),
    Setting("pipeline", "mvc_percent", "mvc_percent", list, None, "thresholds in % of MVC [ON, OFF] (needs calibration)", check=_pair, example=[20, 10]),
    Setting("mqtt", "enabled", "mqtt", bool, True, "publish to an MQTT broker"),
    Setting("mqtt", "broker", "broker", str, "localhost:1883", "HOST:PORT of the broker", check=_port_text),
    Setting("mqtt", "username", "username", str, None, "user name, if the broker wants one", example="crampwatch"),
    Setting("mqtt", "password", "password", str, None, "password, if the broker wants one", example="change-me"),
    Setting("mqtt", "tls", "tls", bool, False, "connect with TLS"),
    Setting("mqtt", "ca_file", "ca_file", str, None, "CA certificate for TLS (else the system's)", example="/etc/ssl/certs/ca.pem"),
    Setting("mqtt", "cert_file", "cert_file", str, None, "client certificate for TLS", example="/etc/crampwatch/client.crt"),
    Setting("mqtt", "key_file", "key_file", str, None, "client key for TLS", example="/etc/crampwatch/client.key"),
    Setting("mqtt", "tls_insecure", "tls_insecure", bool, False, "skip the TLS host name check (testing only)"),
    Setting("mqtt", "keepalive_s", "keepalive_s", int, 30, "seconds between keep-alive pings", check=_positive),
    Setting("mqtt", "topic_prefix", "topic_prefix", str, "crampwatch", "first level of the device topics", check=_device),
    Setting("mqtt", "envelope_interval_s", "envelope_interval_s", (int, float), 1.0, "seconds between envelope summaries (QoS 0)", check=_positive),
    Setting("mqtt", "envelope_expiry_s", "envelope_expiry_s", int, 10, "MQTT v5 message expiry of envelope summaries", check=_positive),
    Setting("outbox", "path", "outbox", str, f"{STATE_DIR}/outbox.db", "SQLite file that holds messages until the broker has them"),
    Setting("outbox", "max_unsent", "max_unsent", int, 100_000, "unsent messages kept at most (beyond: oldest quality, then events, dropped with an error in the log)", check=_positive),
    Setting("outbox", "keep_sent_days", "keep_sent_days", (int, float), 7.0, "days a delivered message is kept", check=_non_negative),
    Setting("outbox", "memory_mb", "outbox_memory_mb", (int, float), 16.0, "while the outbox file cannot be written (disk full, read-only, damaged): MB of messages held in memory (beyond: oldest quality, then events, dropped with an error)", check=_positive),
    Setting("outbox", "retry_s", "outbox_retry_s", (int, float), 30.0, "while the outbox file cannot be written: seconds between attempts to use it again", check=_positive),
    Setting("homeassistant", "discovery", "discovery", bool, True, "publish Home Assistant MQTT discovery"),
    Setting("homeassistant", "prefix", "discovery_prefix", str, "homeassistant", "Home Assistant's discovery prefix", check=_device),
    Setting("homeassistant", "resend_interval_s", "discovery_interval_s", (int, float), 30.0, "when Home Assistant asks for discovery again: at most one re-send per so many seconds", check=_positive),
    Setting("homeassistant", "dashboard_url", "dashboard_url", str, None, "the dashboard's address, shown in Home Assistant as the device's configuration link", check=_web_url, example="http://crampwatch.local:8000/"),
    Setting("recording", "enabled", "record", bool, True, "record raw samples and marker presses"),
    Setting("recording", "directory", "recording_dir", str, f"{STATE_DIR}/nights", "where nights are recorded"),
    Setting("recording", "segment_minutes", "segment_minutes", (int, float), 60.0, "start a new sample file every so many minutes", check=_positive),
    Setting("recording", "max_mb", "recording_max_mb", (int, float), 5000.0, "MB the recorded nights may take (0: no limit); the oldest nights are removed first", check=_non_negative),
    Setting("recording", "max_nights", "recording_max_nights", int, 0, "nights kept at most (0: no limit); the oldest are removed first", check=_non_negative),
    Setting("recording", "min_free_mb", "recording_min_free_mb", (int, float), 500.0, "MB always left free on the recording disk: old nights are removed, else the recording pauses", check=_non_negative),
    Setting("session", "kind", "session", str, "night", "what the recording is: a night, or a named daytime session such as dialysis (its cramps never count for a night)", check=_session_kind),
    Setting("session", "hold_starts", "hold_session", str, "dialysis", "the session a long press of the marker button starts (a long press during it ends it)", check=_named_session_kind),
    Setting("output", "events", "out", str, None, "also write events as JSON lines to this file", example="events.jsonl"),
    Setting("logging", "level", "log_level", str, "info", "how much to log", choices=("debug", "info", "warning", "error")),
)  # fmt: skip

BY_NAME = {s.name: s for s in SETTINGS}
SECTIONS = tuple(dict.fromkeys(s.section for s in SETTINGS))


def load_config(path: Path) -> dict[str, Any]:
    """The file's settings by `dest`, validated; raises DaemonConfigError."""
    try:
        size = Path(path).stat().st_size
        text = Path(path).read_text(encoding="utf-8") if size <= MAX_CONFIG_BYTES else None
    except FileNotFoundError:
        raise DaemonConfigError(
            f"{path}: no such file (write one with `crampwatch config example > {path}`)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DaemonConfigError(f"{path}: cannot read it ({error})") from None
    if text is None:
        raise DaemonConfigError(
            f"{path}: {size:,} bytes is not a configuration file (the full example is about "
            f"4 kB; at most {MAX_CONFIG_BYTES:,} bytes are read)"
        )
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise DaemonConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:  # arrays nested thousands deep
        raise DaemonConfigError(
            f"{path}: its arrays or tables are nested too deeply to read; every setting is a "
            "plain value or a flat list - see `crampwatch config example`"
        ) from None
    except ValueError:  # a number of thousands of digits (Python's int conversion limit)
        raise DaemonConfigError(
            f"{path}: it holds a number too long to read; every number here has a few digits - "
            "see `crampwatch config example`"
        ) from None
    return validate(raw, str(path))


def validate(raw: dict[str, Any], origin: str = "config") -> dict[str, Any]:
    """Check every key of a parsed TOML document; returns the values by `dest`."""
    values: dict[str, Any] = {}
    for section, table in raw.items():
        if section not in SECTIONS:
            raise DaemonConfigError(
                f"{origin}: unknown section [{section}]; the sections are "
                + ", ".join(f"[{s}]" for s in SECTIONS)
            )
        if not isinstance(table, dict):
            raise DaemonConfigError(f"{origin}: {section} must be a [{section}] table")
        for key, value in table.items():
            setting = BY_NAME.get(f"{section}.{key}")
            if setting is None:
                known = ", ".join(s.key for s in SETTINGS if s.section == section)
                raise DaemonConfigError(
                    f"{origin}: unknown key {key!r} in [{section}]; allowed: {known}"
                )
            values[setting.dest] = _checked(setting, value, origin)
    return values


def _checked(setting: Setting, value: Any, origin: str) -> Any:
    where = f"{origin}: [{setting.section}] {setting.key} = {value!r}"
    kinds = setting.kind if isinstance(setting.kind, tuple) else (setting.kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        wanted = " or ".join(_type_name(k) for k in kinds)
        raise DaemonConfigError(f"{where}: must be {wanted} ({setting.help})")
    if setting.choices is not None and value not in setting.choices:
        allowed = ", ".join(repr(c) for c in setting.choices)
        raise DaemonConfigError(f"{where}: must be one of {allowed}")
    if setting.check is not None:
        try:
            value = setting.check(value)
        except ValueError as error:
            raise DaemonConfigError(f"{where}: {error}") from None
    return value


def _type_name(kind: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false",
            list: "a list"}.get(kind, kind.__name__)  # fmt: skip


def resolve(args: argparse.Namespace, file_values: dict[str, Any]) -> argparse.Namespace:
    """Fill every setting the command line left unset (None) from the file, then the default."""
    for setting in SETTINGS:
        if getattr(args, setting.dest, None) is None:
            value = file_values.get(setting.dest, setting.default)
            setattr(args, setting.dest, list(value) if isinstance(value, list) else value)
    return args


def example_text() -> str:
    """A commented configuration file with every setting at its default."""
    lines = [
        "# crampwatch device configuration (TOML). Every key is optional: the value shown is",
        "# the default; keys commented out as #key have no default. Command-line options",
        "# override the file.",
        "# Check a file with `crampwatch config check FILE`.",
    ]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for s in (s for s in SETTINGS if s.section == section):
            lines.append(f"# {s.help}")
            if s.choices:
                lines.append("# one of: " + ", ".join(_toml(c) for c in s.choices))
            if s.default is None:
                lines.append(f"#{s.key} = {_toml(s.example)}")
            else:
                lines.append(f"{s.key} = {_toml(s.default)}")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)
