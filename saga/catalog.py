"""The inventory catalog: the capacity of each flight and hotel, loaded into the service tables.

``saga seed [CATALOG.json]`` loads one, the same on the local cloud and on AWS. Loading creates
what is new and moves the capacity of what exists by a delta (``Ledger.stock``), so seats and rooms
that bookings hold stay held: loading the same catalog twice changes nothing, and a capacity below
what is held is refused, before anything is written.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from booking_saga.contract import InvalidBooking, parse_identifier
from booking_saga.ledger import CapacityBelowHeld, Restock
from booking_saga.services import SERVICES, Service
from saga.deployment import Deployment

SAMPLE_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "sample.json"
MAX_CAPACITY = 1_000_000  # seats on a flight or rooms in a hotel; more is a typo


class InvalidCatalog(ValueError):
    pass


@dataclass(frozen=True)
class Loaded:
    """What loading a catalog did, per service and resource."""

    changes: list[tuple[str, Restock]]  # (service, what happened to one resource)

    def count(self, change: str) -> int:
        return sum(restock.change == change for _, restock in self.changes)

    def to_json(self) -> dict:
        return {change: self.count(change) for change in ("created", "changed", "unchanged")} | {
            "resources": [
                {"service": service, "resource_id": r.resource_id, "change": r.change, "capacity": r.capacity}
                | {"available": r.available}
                for service, r in self.changes
            ]
        }

    def summary(self) -> str:
        return f"{self.count('created')} created, {self.count('changed')} changed, {self.count('unchanged')} unchanged"


def sections(services: tuple[Service, ...] = SERVICES) -> dict[str, str]:
    """The catalog's sections: one per service that sells from a stock (``flights``: the flight service)."""
    return {service.capacity.catalog: service.name for service in services if service.capacity}


def load_catalog(path: Path, services: tuple[Service, ...] = SERVICES) -> dict[str, dict[str, int]]:
    """``{"flight": {id: seats}, "hotel": {id: rooms}}``, validated before anything is written."""
    known = sections(services)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:  # unreadable, not UTF-8, not JSON
        raise InvalidCatalog(f"cannot read catalog {path}: {error}") from None
    if not isinstance(document, dict) or not document or not document.keys() <= known.keys():
        raise InvalidCatalog(f"catalog {path} must be an object with {' and/or '.join(repr(s) for s in known)}")
    catalog = {}
    for section, service in known.items():
        entries = document.get(section, {})
        if not isinstance(entries, dict):
            raise InvalidCatalog(f"catalog {section} must map ids to counts")
        for resource_id, count in entries.items():
            try:
                parse_identifier(resource_id, "id")
            except InvalidBooking:
                raise InvalidCatalog(f"catalog {section}: {resource_id!r} is not a valid id") from None
            if type(count) is not int or not 0 <= count <= MAX_CAPACITY:
                raise InvalidCatalog(f"catalog {section}.{resource_id} must be a whole number from 0 to {MAX_CAPACITY}")
        catalog[service] = entries
    return catalog


def seed(deployment: Deployment, catalog: dict[str, dict[str, int]]) -> Loaded:
    """Load every entry; refuses (``InvalidCatalog``) before writing anything if a capacity would fall below
    what is held now. A booking that lands between that check and the write is still safe: the write's
    condition refuses that one entry, and the error says what was loaded before it."""
    ledgers = {service: deployment.ledger(service) for service in catalog}
    for service, entries in catalog.items():
        for resource_id, capacity in entries.items():
            inventory = ledgers[service].inventory(resource_id)
            if inventory is not None and capacity < int(inventory["capacity"]) - int(inventory["available"]):
                held = int(inventory["capacity"]) - int(inventory["available"])
                raise InvalidCatalog(
                    f"{service} {resource_id}: bookings hold {held}, so its capacity cannot go to {capacity}; "
                    "nothing was loaded"
                )
    changes: list[tuple[str, Restock]] = []
    for service, entries in catalog.items():
        for resource_id, capacity in entries.items():
            try:
                changes.append((service, ledgers[service].stock(resource_id, capacity)))
            except CapacityBelowHeld as error:
                done = Loaded(changes).summary()
                raise InvalidCatalog(f"{error} (bookings came in while loading; loaded before it: {done})") from None
    return Loaded(changes)
