"""The inventory catalog: seats per flight and rooms per hotel, loaded into the service tables.

``saga seed [CATALOG.json]`` loads one; loading sets what is available to sell now, the same on the
local cloud and on AWS.
"""

import json
from pathlib import Path

from booking_saga.contract import InvalidBooking, parse_booking_id
from booking_saga.ledger import Ledger
from saga.deployment import Deployment

SAMPLE_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "sample.json"
_SECTIONS = {"flights": "flight", "hotels": "hotel"}


class InvalidCatalog(ValueError):
    pass


def load_catalog(path: Path) -> dict[str, dict[str, int]]:
    """``{"flight": {id: seats}, "hotel": {id: rooms}}``, validated before anything is written."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InvalidCatalog(f"cannot read catalog {path}: {error}") from None
    if not isinstance(document, dict) or not document.keys() <= _SECTIONS.keys():
        raise InvalidCatalog(f"catalog {path} must be an object with 'flights' and/or 'hotels'")
    catalog = {}
    for section, service in _SECTIONS.items():
        entries = document.get(section, {})
        if not isinstance(entries, dict):
            raise InvalidCatalog(f"catalog {section} must map ids to counts")
        for resource_id, count in entries.items():
            try:
                parse_booking_id(resource_id)
            except InvalidBooking:
                raise InvalidCatalog(f"catalog {section}: {resource_id!r} is not a valid id") from None
            if type(count) is not int or count < 0:
                raise InvalidCatalog(f"catalog {section}.{resource_id} must be a whole number >= 0")
        catalog[service] = entries
    return catalog


def seed(deployment: Deployment, catalog: dict[str, dict[str, int]]) -> int:
    """Write every entry; returns how many inventory items were set."""
    count = 0
    for service, entries in catalog.items():
        ledger = Ledger(deployment.table(service), service)
        for resource_id, quantity in entries.items():
            ledger.stock(resource_id, quantity)
            count += 1
    return count
