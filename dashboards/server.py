"""`crampwatch dashboard`: ingest from the broker into SQLite and serve the web UI, one process."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dashboards.dialysis_log import DialysisLog
from dashboards.guard import HostPolicy
from dashboards.ingest import Ingest, MqttIngest
from dashboards.intake_log import IntakeLog, load_catalogue
from dashboards.live_feed import LiveFeed
from dashboards.queries import Queries
from dashboards.store import Store
from dashboards.web import Dashboard, create_app

log = logging.getLogger("crampwatch.dashboard")


class DashboardSetupError(ValueError):
    """Settings the dashboard cannot start with; the message says what to change."""


def local_zone(name: str | None = None) -> tzinfo:
    """The named zone, else $TZ, else the system's (/etc/localtime), else UTC."""
    candidates = [name] if name else [os.environ.get("TZ"), _system_zone_name()]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            if name:
                raise DashboardSetupError(
                    f"--tz {name!r} is not a time zone name such as Europe/Berlin"
                ) from None
    return ZoneInfo("UTC")


def _system_zone_name() -> str | None:
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        return None
    return target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else None


@dataclass
class DashboardProcess:
    """Everything `crampwatch dashboard` runs, wired together (also used by tests and the demo)."""

    store: Store
    feed: LiveFeed
    intake: IntakeLog
    ingest: Ingest
    app: object
    queries: Queries
    mqtt: MqttIngest | None = None
    sessions: DialysisLog | None = None

    def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.stop()
        self.store.close()


def build(
    db: Path,
    *,
    broker: tuple[str, int] | None,
    tz: tzinfo,
    token: str | None = None,
    demo: bool = False,
    client_id: str = "crampwatch-dashboard",
    min_nights: int = 10,
    listen: tuple[str, int] | None = None,
    allowed_hosts: Sequence[str] = (),
    min_sessions: int | None = None,
) -> DashboardProcess:
    """The dashboard's parts. `listen` is where the server will listen (the hosts it answers to
    follow from it, plus `allowed_hosts`); without it, the loopback names on any port."""
    hosts = HostPolicy.for_listen(*(listen or (None, None)), allowed_hosts)
    store = Store(db)
    feed = LiveFeed()
    catalogue = load_catalogue(store)
    intake = IntakeLog(store, catalogue, tz, feed)
    sessions = DialysisLog(store, tz, feed)
    ingest = Ingest(store, intake.from_mqtt, feed,
                    person_topics={"session": sessions.from_mqtt, "lab": sessions.lab_from_mqtt})  # fmt: skip
    queries = Queries(store, catalogue, tz, min_nights=min_nights,
                      min_sessions=min_nights if min_sessions is None else min_sessions)  # fmt: skip
    mqtt = MqttIngest(ingest, broker[0], broker[1], client_id) if broker is not None else None
    if mqtt is not None:
        sessions.send = mqtt.publish
    app = create_app(Dashboard(queries, intake, feed, token=token, demo=demo, hosts=hosts,
                               broker_link=mqtt.link.status if mqtt else None,
                               sessions=sessions))  # fmt: skip
    if mqtt is not None:
        mqtt.start()
    return DashboardProcess(store, feed, intake, ingest, app, queries, mqtt, sessions)


def serve(process: DashboardProcess, host: str, port: int) -> None:
    """Serve until interrupted (uvicorn handles SIGINT/SIGTERM)."""
    import uvicorn

    log.info("dashboard on http://%s:%d/", host if ":" not in host else f"[{host}]", port)
    uvicorn.run(process.app, host=host, port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]
