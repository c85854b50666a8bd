"""Loading inventory from a JSON catalog, through `saga seed` as users run it against AWS."""

import json

import pytest

from saga.catalog import InvalidCatalog, load_catalog
from saga.cli import main


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
        ({"flights": {"NH101": -1}}, "flights.NH101 must be a whole number >= 0"),
        ({"hotels": {"OSAKA-BAY": 2.5}}, "hotels.OSAKA-BAY must be a whole number >= 0"),
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
