"""Intake logging: every way in (form, JSON API, MQTT, command line, tracker import) lands here,
is validated the same way, and is stored by `entry_id` in one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo
from typing import IO, Any

from dashboards.catalogue import Catalogue, IntakeError
from dashboards.intake import IntakeEntry, entry_from_payload, read_cronometer_daily
from dashboards.live_feed import LiveFeed
from dashboards.store import Store

log = logging.getLogger("crampwatch.dashboard.intake")
IMPORT_BATCH = 1000


def load_catalogue(store: Store) -> Catalogue:
    """The built-in factors plus the custom ones this store has seen."""
    return Catalogue(custom=[dict(row) for row in store.custom_factors()])


@dataclass
class IntakeLog:
    store: Store
    catalogue: Catalogue
    tz: tzinfo
    feed: LiveFeed | None = None

    def add(self, payload: dict[str, Any] | bytes | str, source: str) -> tuple[IntakeEntry, bool]:
        """Validate and store an entry; returns it and whether it was new. IntakeError if bad."""
        entry = entry_from_payload(payload, self.catalogue, source=source, local_tz=self.tz)
        return entry, self._store(entry)

    def replace(self, entry_id: str, payload: dict[str, Any]) -> IntakeEntry:
        """Edit an entry in place (same id); IntakeError if it does not exist or is bad."""
        existing = self.store.intake(entry_id)
        if existing is None:
            raise IntakeError(f"there is no intake entry {entry_id!r}")
        fields = {**payload, "entry_id": entry_id}
        entry = entry_from_payload(fields, self.catalogue, source=existing.source, local_tz=self.tz)  # type: ignore[arg-type]
        self._store(entry)
        return entry

    def delete(self, entry_id: str) -> bool:
        deleted = self.store.delete_intake(entry_id)
        if deleted and self.feed is not None:
            self.feed.publish("intake")
        return deleted

    def import_cronometer(self, stream: IO[str] | IO[bytes] | str) -> tuple[int, int]:
        """A Cronometer daily-nutrition export; returns (entries, of which new).

        Stored in batches, each its own short transaction, so that other requests are served
        between them; every entry validated before the first is stored."""
        entries = read_cronometer_daily(stream, self.catalogue, self.tz)
        new = 0
        for first in range(0, len(entries), IMPORT_BATCH):
            batch = entries[first : first + IMPORT_BATCH]
            new += self.store.put_intakes([entry.to_dict() for entry in batch])
        if entries and self.feed is not None:
            self.feed.publish("intake")
        return len(entries), new

    def from_mqtt(self, payload: bytes, person: str) -> None:
        """The MQTT intake topic; raises Refused-compatible IntakeError text for ingest."""
        from dashboards.ingest import Refused

        try:
            self.add(payload, "mqtt")
        except IntakeError as error:
            raise Refused(str(error)) from None

    def _store(self, entry: IntakeEntry) -> bool:
        factor = self.catalogue.get(entry.factor)
        if factor.custom:
            self.store.put_custom_factor(factor.key, factor.label, factor.unit, factor.kind)
        new = self.store.put_intake(entry.to_dict())
        if self.feed is not None:
            self.feed.publish("intake")
        return new
