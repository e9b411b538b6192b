"""Where the MQTT broker is and how to reach it: one set of settings for device and dashboard."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 30
    client_id: str | None = None
    mqtt_v5: bool = True

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_broker(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` -> (host, port); port 1883 when not given."""
    host, sep, port = text.rpartition(":") if ":" in text else (text, "", "1883")
    if not sep:
        host = text
    if not host:
        raise ValueError(f"broker {text!r}: give HOST or HOST:PORT, e.g. localhost:1883")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"broker {text!r}: the port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise ValueError(f"broker {text!r}: the port must be 1-65535")
    return host, number
