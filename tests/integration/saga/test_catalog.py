"""Loading inventory from a JSON catalog, through `saga seed` as users run it against AWS."""

import json

import pytest

from saga.audit import audit
from saga.bookings import start_booking, wait_for
from saga.catalog import InvalidCatalog, load_catalog, seed
from saga.cli import main
from tests.factories import booking


def audit_is_clean(deployment) -> bool:
    report = audit(deployment)
    return report.clean and not report.drift


def stock(deployment, service: str) -> dict[str, int]:
    items = deployment.table(service).scan(ConsistentRead=True)["Items"]
    return {item["resource_id"]: int(item["available"]) for item in items if item["pk"].startswith("inventory#")}


def test_the_command_loads_a_catalog_into_the_deployed_tables(deployment, cloud, tmp_path, capsys):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"flights": {"NH101": 7, "XX9": 3}, "hotels": {"OSAKA-BAY": 0}}))

    assert main(["seed", str(catalog), "--endpoint-url", cloud.endpoint_url]) == 0

    assert "loaded 3 inventory items" in capsys.readouterr().out
    assert stock(deployment, "flight") == {"NH101": 7, "XX9": 3, "NH106": 120, "JL5": 240, "SMALL-1": 2}
    assert stock(deployment, "hotel")["OSAKA-BAY"] == 0


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "cannot read catalog"),
        ({"cars": {}}, "must be an object with 'flights' and/or 'hotels'"),
        ({"flights": ["NH101"]}, "must map ids to counts"),
        ({"flights": {"NH 101": 3}}, "'NH 101' is not a valid id"),
        ({"flights": {"NH101": -1}}, "flights.NH101 must be a whole number from 0 to 1000000"),
        ({"hotels": {"OSAKA-BAY": 2.5}}, "hotels.OSAKA-BAY must be a whole number from 0 to 1000000"),
        ({"flights": {"NH101": 10**40}}, "flights.NH101 must be a whole number from 0 to 1000000"),
        ({}, "must be an object with 'flights' and/or 'hotels'"),
        ({"flights": {"NH101": 4}, "hotels": {"OSAKA-BAY": True}}, "hotels.OSAKA-BAY must be a whole number"),
    ],
)
def test_a_bad_catalog_is_refused_before_anything_is_written(deployment, cloud, tmp_path, capsys, document, problem):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(document if isinstance(document, str) else json.dumps(document))
    before = stock(deployment, "flight"), stock(deployment, "hotel")

    assert main(["seed", str(catalog), "--endpoint-url", cloud.endpoint_url]) == 2

    assert problem in capsys.readouterr().err
    assert (stock(deployment, "flight"), stock(deployment, "hotel")) == before
    with pytest.raises(InvalidCatalog):
        load_catalog(catalog)


def test_a_stack_that_is_not_deployed_is_named(cloud, capsys):
    assert main(["seed", "--stack", "NoSuchSaga", "--endpoint-url", cloud.endpoint_url]) == 2
    assert f"stack NoSuchSaga is not deployed at {cloud.endpoint_url}" in capsys.readouterr().err


def test_restocking_while_bookings_hold_seats_never_resells_them(deployment, tmp_path):
    """Seed a 2-seat flight, book both seats, seed again: nothing more to sell (it used to sell 2 more)."""
    catalog = tmp_path / "restock.json"
    catalog.write_text(json.dumps({"flights": {"RESTOCK-1": 2}, "hotels": {"RESTOCK-INN": 5}}))
    seed(deployment, load_catalog(catalog))
    trip = {"flight": {"flight_id": "RESTOCK-1", "seats": 2}, "hotel": {"hotel_id": "RESTOCK-INN", "rooms": 1}}
    start_booking(deployment, booking("restock-1", **trip))
    assert wait_for(deployment, "restock-1", timeout=60).verdict == "confirmed"

    again = seed(deployment, load_catalog(catalog))
    start_booking(deployment, booking("restock-2", **trip))
    second = wait_for(deployment, "restock-2", timeout=60)

    assert again.to_json()["unchanged"] == 2
    assert (second.verdict, second.failed_step.error) == ("compensated", "SoldOut")
    assert deployment.ledger("flight").inventory("RESTOCK-1") | {"pk": None} == {
        "pk": None,
        "resource_id": "RESTOCK-1",
        "capacity": 2,
        "available": 0,
    }
    assert audit_is_clean(deployment)


def test_restocking_moves_capacity_by_a_delta_and_refuses_less_than_is_held(deployment, saga, tmp_path):
    catalog = tmp_path / "restock.json"
    catalog.write_text(json.dumps({"flights": {"RESTOCK-2": 10}, "hotels": {"RESTOCK-2-INN": 5}}))
    assert saga("seed", str(catalog))[0] == 0
    trip = {"flight": {"flight_id": "RESTOCK-2", "seats": 4}, "hotel": {"hotel_id": "RESTOCK-2-INN", "rooms": 1}}
    start_booking(deployment, booking("restock-3", **trip))
    assert wait_for(deployment, "restock-3", timeout=60).verdict == "confirmed"

    steps = []
    for seats in (15, 15, 4, 3):
        catalog.write_text(json.dumps({"flights": {"RESTOCK-2": seats}}))
        code, _, err = saga("seed", str(catalog))
        inventory = deployment.ledger("flight").inventory("RESTOCK-2")
        steps.append((seats, code, int(inventory["capacity"]), int(inventory["available"]), audit_is_clean(deployment)))
        if code:
            assert err == (
                "saga: error: invalid input: flight RESTOCK-2: bookings hold 4, so its capacity cannot go to 3; "
                "nothing was loaded\n"
            )

    assert steps == [
        (15, 0, 15, 11, True),  # up: the 4 held stay held
        (15, 0, 15, 11, True),  # the same catalog again: no change
        (4, 0, 4, 0, True),  # down to exactly what is held
        (3, 2, 4, 0, True),  # below what is held: refused, nothing written
    ]
