"""Intake logging: every way in (form, JSON API, MQTT, command line, tracker import) lands here,
is validated the same way, and is stored by `entry_id` in one table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import tzinfo
from typing import IO, Any

from dashboards.catalogue import Catalogue, IntakeError, factor_from_record, format_number
from dashboards.intake import IntakeEntry, entry_from_payload, read_cronometer_daily
from dashboards.live_feed import LiveFeed
from dashboards.store import Store

log = logging.getLogger("crampwatch.dashboard.intake")
IMPORT_BATCH = 1000


def load_catalogue(store: Store) -> Catalogue:
    """The built-in factors plus the custom ones this store has seen. A custom factor whose name
    is now a built-in one (an older 'coffee', now caffeine) is left out with a warning; its
    entries stay as they were logged."""
    catalogue = Catalogue()
    for row in store.custom_factors():
        try:
            catalogue.register(factor_from_record(dict(row)))
        except IntakeError as error:
            log.warning("custom factor %r is not used: %s", row["key"], error)
    return catalogue


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

    def check(self, payload: dict[str, Any]) -> dict[str, Any]:
        """What `payload` would be stored as, in words too; nothing is stored or registered.
        IntakeError (UnknownFactorError with suggestions) if it would be refused."""
        entry = entry_from_payload(
            payload, self.catalogue, source="api", local_tz=self.tz, register_custom=False
        )
        return {**entry.to_dict(), "shown": self.describe(payload, entry),
                "new_factor": entry.factor not in self.catalogue}  # fmt: skip

    def describe(self, payload: dict[str, Any], entry: IntakeEntry) -> str:
        """'1 glass water = 250 mL water', or '300 mg magnesium' when nothing was converted."""
        found = self.catalogue.find(entry.factor)
        label = (found.label if found else entry.factor.replace("_", " ")).lower()
        stored = f"{format_number(entry.amount)} {entry.unit} {label}"
        amount, unit = payload.get("amount"), payload.get("unit")
        given = " ".join(str(p).strip() for p in (amount, unit) if p not in (None, ""))
        name = str(payload.get("factor", "")).strip()
        if not given or given in (f"{format_number(entry.amount)} {entry.unit}",):
            return stored
        return f"{given} {name} = {stored}"

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
