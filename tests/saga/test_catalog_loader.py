"""The catalog loader on its own: what it refuses, before anything is written (tests/integration/saga has the
loading into a deployed stack)."""

import json

import pytest

from saga.catalog import MAX_CAPACITY, InvalidCatalog, load_catalog


def test_a_valid_catalog_maps_each_service_to_its_counts(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"flights": {"NH101": 180}, "hotels": {"TOKYO-GRAND": 0}}))

    assert load_catalog(catalog) == {"flight": {"NH101": 180}, "hotel": {"TOKYO-GRAND": 0}}


def test_a_catalog_that_is_not_utf8_is_refused(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_bytes(b'{"flights": {"NH101": 3, "\xff": 1}}')

    with pytest.raises(InvalidCatalog, match=r"cannot read catalog .*utf-8"):
        load_catalog(catalog)


def test_a_count_beyond_any_flight_or_hotel_is_refused(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"hotels": {"GRAND": MAX_CAPACITY + 1}}))

    with pytest.raises(InvalidCatalog, match=f"hotels.GRAND must be a whole number from 0 to {MAX_CAPACITY}"):
        load_catalog(catalog)
